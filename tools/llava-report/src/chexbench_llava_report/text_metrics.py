"""BLEU (sacrebleu) and ROUGE-L (rouge-score), with per-report statistics so that a bootstrap can recompute the
corpus value on every resample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CorpusBleu:
    """sacrebleu's BLEU (13a tokeniser, exp smoothing, 0-100 scale) with one statistics row per report:
    [hypothesis length, reference length, matches per order, totals per order]."""

    order: int
    stats: np.ndarray

    @classmethod
    def compute(cls, generated: list[str], references: list[str], order: int) -> CorpusBleu:
        from sacrebleu.metrics import BLEU

        bleu = BLEU(max_ngram_order=order)
        # sacrebleu's own bootstrap uses these per-segment statistics; reading them (a private method) lets the
        # resampling here share its draws with every other metric instead of sacrebleu's separate seed.
        stats = bleu._extract_corpus_statistics(generated, [references])
        return cls(order, np.asarray(stats, dtype=np.int64).reshape(len(generated), 2 + 2 * order))

    def score(self, weights: np.ndarray | None = None) -> float:
        """Corpus BLEU of the reports, each counted `weights[i]` times (all once by default)."""
        from sacrebleu.metrics import BLEU

        totals = self.stats.sum(axis=0) if weights is None else weights @ self.stats
        return float(BLEU(max_ngram_order=self.order)._compute_score_from_stats(totals.tolist()).score)

    def sentence_scores(self) -> np.ndarray:
        """Each report's own BLEU from its statistics row (sacrebleu's sentence BLEU, exp smoothing)."""
        from sacrebleu.metrics import BLEU

        bleu = BLEU(max_ngram_order=self.order)
        return np.array([bleu._compute_score_from_stats(row.tolist()).score for row in self.stats])

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """Corpus BLEU for each bootstrap replicate (rows of `counts`)."""
        return np.array([self.score(row) for row in counts])


def rouge_l(generated: list[str], references: list[str], stemmer: bool) -> np.ndarray:
    """ROUGE-L F-measure of each report against its reference (rouge-score's LCS F, beta 1)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemmer)
    return np.array([scorer.score(ref, gen)["rougeL"].fmeasure for gen, ref in zip(generated, references, strict=True)])


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    return {name: md.version(name) for name in ("sacrebleu", "rouge-score")}
