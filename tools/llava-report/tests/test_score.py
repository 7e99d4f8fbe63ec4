"""`chexbench-llava-report score`: every metric against an independent reference on the same strings (sacrebleu's
public corpus_score, nltk's corpus_bleu, a hand LCS, sklearn's classification_report, a hand-built CheXbert forward),
the bootstrap against the shared helper, and the stage's outputs, skips and errors."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from chexbench_common.hashing import sha256_file
from chexbench_common.stats import bootstrap_counts, cluster_bootstrap
from chexbench_llava_report.chexbert import CONDITIONS, FIVE, CheXbert, LabelCounts, binary, f1_scores, per_label
from chexbench_llava_report.cli import main
from chexbench_llava_report.text_metrics import CorpusBleu, rouge_l
from chexbench_schema import read_table
from click.testing import CliRunner
from sklearn.metrics import classification_report

# the original's main_*.csv columns (README, "Outputs": the original's 12 columns), written out independently
ORIGINAL_MAIN = [
    "Micro-F1-14",
    "Micro-F1-5",
    "Macro-F1-14",
    "Macro-F1-5",
    "Micro-F1-14+",
    "Micro-F1-5+",
    "Macro-F1-14+",
    "Macro-F1-5+",
    "F1-RadGraph",
    "BLEU-1",
    "BLEU-4",
    "ROUGE-L",
]


def test_bleu_equals_sacrebleu_and_nltk(report_pairs):
    from nltk.translate.bleu_score import corpus_bleu
    from sacrebleu.metrics import BLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    refs, gens = report_pairs
    tokenize = Tokenizer13a()
    for order in (1, 4):
        ours = CorpusBleu.compute(gens, refs, order).score()
        assert ours == pytest.approx(BLEU(max_ngram_order=order).corpus_score(gens, [refs]).score, abs=1e-9)
        # nltk: same 13a tokens, uniform weights, no smoothing (every order has matches here); only generations
        # with at least `order` tokens: for shorter ones nltk counts one n-gram where sacrebleu counts none
        kept = [i for i, g in enumerate(gens) if len(tokenize(g).split()) >= order]
        ours = CorpusBleu.compute([gens[i] for i in kept], [refs[i] for i in kept], order).score()
        hypotheses = [tokenize(gens[i]).split() for i in kept]
        nltk = corpus_bleu([[tokenize(refs[i]).split()] for i in kept], hypotheses, weights=(1 / order,) * order)
        assert ours == pytest.approx(100 * nltk, abs=1e-6)


def test_bleu_on_a_resample_equals_sacrebleu_on_the_repeated_reports(report_pairs):
    from sacrebleu.metrics import BLEU

    refs, gens = report_pairs
    counts = bootstrap_counts(len(refs), 3, seed=5)
    for order in (1, 4):
        bleu = CorpusBleu.compute(gens, refs, order)
        for row, value in zip(counts, bleu.resampled(counts), strict=True):
            index = np.repeat(np.arange(len(refs)), row)
            expected = BLEU(max_ngram_order=order).corpus_score([gens[i] for i in index], [[refs[i] for i in index]])
            assert value == pytest.approx(expected.score, abs=1e-9)


def _lcs_f(reference: str, generated: str) -> float:
    """ROUGE-L F (beta 1) by a plain LCS over rouge-score's default tokens (lowercase alphanumeric runs)."""
    a, b = (re.sub(r"[^a-z0-9]+", " ", s.lower()).split() for s in (reference, generated))
    if not a or not b:
        return 0.0
    table = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1, j + 1] = table[i, j] + 1 if x == y else max(table[i, j + 1], table[i + 1, j])
    lcs = table[-1, -1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(b), lcs / len(a)
    return 2 * precision * recall / (precision + recall)


def test_rouge_l_equals_a_hand_lcs(report_pairs):
    refs, gens = report_pairs
    ours = rouge_l(gens, refs, stemmer=False)
    assert ours == pytest.approx([_lcs_f(r, g) for r, g in zip(refs, gens, strict=True)], abs=1e-12)
    assert ours[9] == 1.0 and ours[3] == 0.0


def _hand_labels(checkpoint, tokenizer_dir, reports):
    """CheXbert labels one report at a time, built by hand: transformers' own truncation, BertModel with the
    checkpoint's `module.bert.*` weights, each head as a matrix product on the [CLS] state."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    state = torch.load(checkpoint, weights_only=True)["model_state_dict"]
    bert = BertModel(BertConfig.from_pretrained(tokenizer_dir)).eval()
    bert.load_state_dict(
        {
            k[len("module.bert.") :]: v
            for k, v in state.items()
            if k.startswith("module.bert.") and "position_ids" not in k
        }
    )
    tokenizer = BertTokenizer.from_pretrained(tokenizer_dir)
    labels = []
    for report in reports:
        text = " ".join(report.split())
        ids = tokenizer(text, truncation=True, max_length=512, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            cls = bert(input_ids=ids).last_hidden_state[0, 0]
        heads = [
            state[f"module.linear_heads.{i}.weight"] @ cls + state[f"module.linear_heads.{i}.bias"] for i in range(14)
        ]
        labels.append([int(h.argmax()) for h in heads])
    return np.array(labels)


def test_chexbert_labels_equal_a_hand_built_forward(tiny_chexbert, report_pairs):
    import torch

    refs, gens = report_pairs
    reports = refs + gens
    labeler = CheXbert.load(*tiny_chexbert, torch.device("cpu"))
    ours = labeler.label(reports, batch_size=7)  # padded batches of mixed lengths, incl. a > 512-token report
    np.testing.assert_array_equal(ours, _hand_labels(*tiny_chexbert, reports))
    assert len(set(map(tuple, ours))) > 10, "the tiny model should give varied labels"
    assert labeler.label([""]).shape == (1, 14)


def test_chexbert_f1_equals_sklearn_classification_report():
    rng = np.random.default_rng(3)
    ref_classes = rng.integers(0, 4, size=(200, 14))
    gen_classes = np.where(rng.random((200, 14)) < 0.6, ref_classes, rng.integers(0, 4, size=(200, 14)))
    ref_classes[:, 13] %= 2  # No Finding: blank or positive
    gen_classes[:, 13] %= 2
    gen_classes[:, 10] = 0  # a condition never predicted: F1 0 (sklearn's zero_division default)
    five = [CONDITIONS.index(c) for c in FIVE]
    for positive in (False, True):
        y_true, y_pred = binary(ref_classes, positive).astype(int), binary(gen_classes, positive).astype(int)
        totals = LabelCounts.of(y_true, y_pred).totals()
        for columns in (list(range(14)), five):
            report = classification_report(y_true[:, columns], y_pred[:, columns], output_dict=True, zero_division=0)
            ours = f1_scores(*totals, columns)
            assert ours["micro"] == pytest.approx(report["micro avg"]["f1-score"], abs=1e-12)
            assert ours["macro"] == pytest.approx(report["macro avg"]["f1-score"], abs=1e-12)
        report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
        table = per_label(*totals)
        for i in range(14):
            for ours_key, theirs_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
                assert table[ours_key][i] == pytest.approx(report[str(i)][theirs_key], abs=1e-12)
            assert table["support"][i] == report[str(i)]["support"]


def test_uncertain_mapping():
    classes = np.array([[0, 1, 2, 3]])
    assert binary(classes, False).tolist() == [[False, True, False, False]]
    assert binary(classes, True).tolist() == [[False, True, False, True]]


def test_bootstrap_counts_resample_like_the_shared_helper():
    values = np.random.default_rng(0).random(50)
    counts = bootstrap_counts(50, 200, seed=7)
    assert (counts.sum(axis=1) == 50).all()
    means = counts @ values / 50
    low, high = np.quantile(means, [0.025, 0.975])
    assert (low, high) == pytest.approx(cluster_bootstrap(values, 200, 0.95, seed=7), abs=1e-12)


def _write_generate_folder(root, setting, refs, gens, finished=True):
    folder = root / "Results" / "m" / "r" / "llava-report" / f"generate-{setting}"
    folder.mkdir(parents=True)
    pd.DataFrame({"prompt_id": [f"p{i}" for i in range(len(refs))], "reference": refs, "generated": gens}).to_parquet(
        folder / "predictions.parquet"
    )
    if finished:
        (folder / "manifest.json").write_text(json.dumps({"status": "success"}))
        (folder / "_SUCCESS").write_text("done\n")
    return folder / "predictions.parquet"


def _score(tmp_path, *extra):
    args = ["score", "--results", str(tmp_path / "Results"), "--model", "m", "--run-id", "r", "--bootstrap", "200"]
    return CliRunner().invoke(main, [*args, *extra])


def _chexbert_args(tiny_chexbert):
    return ["--chexbert", str(tiny_chexbert[0]), "--chexbert-tokenizer", str(tiny_chexbert[1])]


def test_score_end_to_end_against_references(tmp_path, tiny_chexbert, report_pairs):
    from sacrebleu.metrics import BLEU

    refs, gens = report_pairs
    _write_generate_folder(tmp_path, "p10", refs, gens)
    _write_generate_folder(tmp_path, "p50", refs, gens, finished=False)  # unfinished: not scored
    csv = tmp_path / "zero.csv"
    pd.DataFrame({"prompt_id": range(20), "reference": refs[:20], "generated": refs[20:]}).to_csv(csv, index=False)
    p10 = tmp_path / "Results/m/r/llava-report/generate-p10/predictions.parquet"
    checkpoint, tokenizer = tiny_chexbert
    inputs = ["--predictions", str(p10), "--predictions", f"zero-shot={csv}", *_chexbert_args(tiny_chexbert)]
    result = _score(tmp_path, *inputs)
    assert result.exit_code == 0, result.output
    stage = tmp_path / "Results/m/r/llava-report"
    metrics = read_table(stage / "metrics.parquet", "metrics")
    assert set(metrics["subset"]) == {"p10", "zero-shot"}
    assert set(metrics["metric"]) == set(ORIGINAL_MAIN)
    p10_rows = metrics[metrics["subset"] == "p10"].set_index("metric")
    computed = p10_rows.drop(index="F1-RadGraph")
    assert computed["value"].notna().all() and computed["ci_low"].notna().all()
    assert (computed["ci_low"] <= computed["ci_high"]).all()
    assert (p10_rows["n_real"] == len(refs)).all()
    assert p10_rows.loc["F1-RadGraph", "value"] is None or np.isnan(p10_rows.loc["F1-RadGraph", "value"])
    assert p10_rows.loc["F1-RadGraph", "note"].startswith("skipped: weights missing (--radgraph-model)")
    # values against the references on the same strings
    for order in (1, 4):
        expected = BLEU(max_ngram_order=order).corpus_score(gens, [refs]).score
        assert p10_rows.loc[f"BLEU-{order}", "value"] == pytest.approx(expected, abs=1e-9)
    assert p10_rows.loc["ROUGE-L", "value"] == pytest.approx(
        np.mean([_lcs_f(r, g) for r, g in zip(refs, gens, strict=True)])
    )
    labels = _hand_labels(checkpoint, tokenizer, refs + gens)
    five = [CONDITIONS.index(c) for c in FIVE]
    for suffix, positive in (("", False), ("+", True)):
        y_true, y_pred = binary(labels[: len(refs)], positive), binary(labels[len(refs) :], positive)
        for k, columns in ((14, list(range(14))), (5, five)):
            report = classification_report(y_true[:, columns], y_pred[:, columns], output_dict=True, zero_division=0)
            for average in ("micro", "macro"):
                value = p10_rows.loc[f"{average.capitalize()}-F1-{k}{suffix}", "value"]
                assert value == pytest.approx(report[f"{average} avg"]["f1-score"], abs=1e-12)
    # per-sample table, breakdown and the original layout
    samples = pd.read_parquet(stage / "per_sample.parquet")
    assert len(samples) == len(refs) + 20
    first = samples[samples["subset"] == "p10"]
    np.testing.assert_array_equal(first[[f"generated_{c}" for c in CONDITIONS]].to_numpy(), labels[len(refs) :])
    breakdown = pd.read_csv(stage / "breakdown.csv")
    assert len(breakdown) == 2 * 2 * 14 and breakdown["f1_ci_low"].notna().all()
    main_csv = pd.read_csv(stage / "original" / "main_p10.csv", index_col=0)
    assert list(main_csv.columns) == ORIGINAL_MAIN and list(main_csv.index) == ["median", "ci_l", "ci_h", "point"]
    assert main_csv["F1-RadGraph"].isna().all()
    breakdown_n = pd.read_csv(stage / "original" / "breakdown_n_p10.csv", index_col=0)
    assert list(breakdown_n.columns) == ["f1-score", "precision", "recall", "support"]
    assert list(breakdown_n.index) == [*CONDITIONS, "micro avg", "macro avg"]
    y_true, y_pred = binary(labels[: len(refs)], False), binary(labels[len(refs) :], False)
    report = classification_report(y_true, y_pred, target_names=list(CONDITIONS), output_dict=True, zero_division=0)
    for row in breakdown_n.index:
        for column in breakdown_n.columns:
            assert breakdown_n.loc[row, column] == pytest.approx(report[row][column], abs=1e-12), (row, column)
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["weights"]["chexbert"] == sha256_file(checkpoint)
    assert manifest["scorers"]["libraries"]["sacrebleu"] and manifest["scorers"]["rouge_stemmer"] is False
    assert manifest["counts"] == {"p10": len(refs), "zero-shot": 20}
    again = _score(tmp_path, *inputs)  # same inputs and options: nothing to redo
    assert again.exit_code == 0 and "up to date" in again.output


def test_original_main_rows_are_filled_as_llava_rad_fills_them(tmp_path, tiny_chexbert, report_pairs):
    """LLaVA-Rad's evaluation (CheXGenBench's, unchanged): BLEU's `median` row is sacrebleu's corpus score on all
    reports, its ci_l/ci_h sacrebleu's mean -/+ half interval of the resamples; every other column's `median` is the
    median of the resamples (scipy's / rouge-score's percentile bootstrap). Each checked against those libraries'
    own computations on the same resamples; `point` is the value on all reports; main_rows.csv labels every cell."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import estimate_ci
    from sklearn.metrics import f1_score

    refs, gens = report_pairs
    predictions = _write_generate_folder(tmp_path, "p10", refs, gens)
    result = _score(tmp_path, "--predictions", str(predictions), *_chexbert_args(tiny_chexbert))
    assert result.exit_code == 0, result.output
    stage = tmp_path / "Results/m/r/llava-report"
    main_csv = pd.read_csv(stage / "original" / "main_p10.csv", index_col=0)
    metrics = read_table(stage / "metrics.parquet", "metrics").set_index("metric")
    counts = bootstrap_counts(len(refs), 200, seed=0)
    draws = [np.repeat(np.arange(len(refs)), row) for row in counts]
    for order in (1, 4):
        column = main_csv[f"BLEU-{order}"]
        bleu = BLEU(max_ngram_order=order)
        assert column["median"] == pytest.approx(bleu.corpus_score(gens, [refs]).score, abs=1e-9)
        resampled = [bleu.corpus_score([gens[i] for i in d], [[refs[i] for i in d]]).score for d in draws]
        mean, half = estimate_ci(np.array(resampled))
        assert (column["ci_l"], column["ci_h"]) == pytest.approx((mean - half, mean + half), abs=1e-9)
    rouge = np.array([_lcs_f(r, g) for r, g in zip(refs, gens, strict=True)])
    means = [rouge[d].mean() for d in draws]
    assert main_csv.loc["median", "ROUGE-L"] == pytest.approx(np.median(means), abs=1e-12)
    assert main_csv.loc["median", "ROUGE-L"] != pytest.approx(rouge.mean(), abs=1e-6)  # a median, not the point
    assert (main_csv.loc["ci_l", "ROUGE-L"], main_csv.loc["ci_h", "ROUGE-L"]) == pytest.approx(
        np.percentile(means, [2.5, 97.5]), abs=1e-12
    )
    labels = _hand_labels(*tiny_chexbert, refs + gens)
    five = [CONDITIONS.index(c) for c in FIVE]
    for name, positive, columns, average in (
        ("Micro-F1-14", False, list(range(14)), "micro"),
        ("Macro-F1-5+", True, five, "macro"),
    ):
        y_true, y_pred = (binary(labels[part], positive)[:, columns] for part in (slice(0, 40), slice(40, 80)))
        resampled = [f1_score(y_true, y_pred, average=average, sample_weight=w, zero_division=0) for w in counts]
        assert main_csv.loc["median", name] == pytest.approx(np.median(resampled), abs=1e-12)
        assert (main_csv.loc["ci_l", name], main_csv.loc["ci_h", name]) == pytest.approx(
            np.percentile(resampled, [2.5, 97.5]), abs=1e-12
        )
    for column in ORIGINAL_MAIN:
        if column != "F1-RadGraph":
            assert main_csv.loc["point", column] == pytest.approx(metrics.loc[column, "value"], abs=1e-12)
    assert main_csv["F1-RadGraph"].isna().all()
    rows = pd.read_csv(stage / "original" / "main_rows.csv")
    assert len(rows) == 4 * len(ORIGINAL_MAIN) and rows["meaning"].str.len().gt(20).all()
    meaning = rows.set_index(["row", "column"])["meaning"]
    assert (
        meaning["median", "BLEU-4"].startswith("value on all reports") and "not a median" in meaning["median", "BLEU-4"]
    )
    assert meaning["median", "ROUGE-L"].startswith("median of the 200 bootstrap resamples")


def test_bleu_is_case_and_punctuation_sensitive_and_rouge_l_is_not():
    """What the README says of the text metrics: sacrebleu's 13a tokeniser keeps case and splits punctuation into
    tokens of their own; rouge-score lowercases and keeps only letters and digits."""
    reference = ["The heart is normal."]
    for generated in (["the heart is normal."], ["The heart is normal"]):  # case only; punctuation only
        assert CorpusBleu.compute(generated, reference, 1).score() < 90
        assert rouge_l(generated, reference, stemmer=False).tolist() == [1.0]
    assert CorpusBleu.compute(reference, reference, 1).score() == pytest.approx(100)


def test_training_seeds_are_scored_each_and_as_their_mean(tmp_path, report_pairs):
    """generate-p10, generate-p10-seed1, generate-p10-seed2 are seeds 0-2 of p10: each scored as p10/seed<S> with its
    own CI and original CSVs, and p10 is their mean with a two-level bootstrap CI (each replicate: the seeds' shared
    resample of the reports, the seeds drawn with replacement), recomputed here with sacrebleu and a hand LCS."""
    from sacrebleu.metrics import BLEU

    refs, gens = report_pairs
    seeds = {0: gens, 1: gens[5:] + gens[:5], 2: [g.upper() for g in gens]}
    for seed, generated in seeds.items():
        _write_generate_folder(tmp_path, "p10" if seed == 0 else f"p10-seed{seed}", refs, generated)
    _write_generate_folder(tmp_path, "zeroshot", refs, refs[::-1])
    result = _score(tmp_path)
    assert result.exit_code == 0, result.output
    stage = tmp_path / "Results/m/r/llava-report"
    metrics = read_table(stage / "metrics.parquet", "metrics")
    assert set(metrics["subset"]) == {"p10/seed0", "p10/seed1", "p10/seed2", "p10", "zeroshot"}
    by = metrics.set_index(["subset", "metric"])
    counts = bootstrap_counts(len(refs), 200, seed=0)
    draws = np.random.default_rng([0, 1]).integers(0, 3, size=(200, 3))
    bleu = BLEU(max_ngram_order=1)
    resampled = {"ROUGE-L": [], "BLEU-1": []}
    for seed, generated in seeds.items():
        rouge = np.array([_lcs_f(r, g) for r, g in zip(refs, generated, strict=True)])
        assert by.loc[(f"p10/seed{seed}", "ROUGE-L"), "value"] == pytest.approx(rouge.mean(), abs=1e-12)
        resampled["ROUGE-L"].append(counts @ rouge / len(refs))
        index = [np.repeat(np.arange(len(refs)), row) for row in counts]
        scores = [bleu.corpus_score([generated[i] for i in d], [[refs[i] for i in d]]).score for d in index]
        resampled["BLEU-1"].append(np.array(scores))
    for name, tolerance in (("ROUGE-L", 1e-12), ("BLEU-1", 1e-9)):
        per_seed = [by.loc[(f"p10/seed{s}", name), "value"] for s in seeds]
        mean = by.loc[("p10", name)]
        assert mean["value"] == pytest.approx(np.mean(per_seed), abs=tolerance)
        table = np.stack(resampled[name], axis=1)  # (resamples, seeds)
        two_level = np.take_along_axis(table, draws, axis=1).mean(axis=1)
        assert (mean["ci_low"], mean["ci_high"]) == pytest.approx(np.quantile(two_level, [0.025, 0.975]), abs=tolerance)
        assert f"std {np.std(per_seed, ddof=1):.4g}" in mean["note"] and "training seeds (0, 1, 2)" in mean["note"]
    assert "seed" not in " ".join(metrics[metrics["subset"] == "zeroshot"]["note"]).replace("seed 0", "")
    originals = sorted(p.name for p in (stage / "original").glob("main_*.csv"))
    assert originals == ["main_p10-seed0.csv", "main_p10-seed1.csv", "main_p10-seed2.csv", "main_rows.csv"] + [
        "main_zeroshot.csv"
    ]
    samples = pd.read_parquet(stage / "per_sample.parquet")
    assert samples.groupby("subset").size().to_dict() == {f"p10/seed{s}": 40 for s in seeds} | {"zeroshot": 40}
    assert json.loads((stage / "manifest.json").read_text())["training_seeds"] == {"p10": [0, 1, 2]}


def test_identical_seeds_give_the_seeds_own_interval_and_mismatched_seeds_are_refused(tmp_path, report_pairs):
    refs, gens = report_pairs
    first = _write_generate_folder(tmp_path, "p50", refs, gens)
    _write_generate_folder(tmp_path, "p50-seed4", refs, gens)
    assert _score(tmp_path).exit_code == 0
    by = read_table(tmp_path / "Results/m/r/llava-report/metrics.parquet", "metrics").set_index(["subset", "metric"])
    for name in ("BLEU-4", "ROUGE-L"):
        own, mean = by.loc[("p50/seed0", name)], by.loc[("p50", name)]
        assert (mean["value"], mean["ci_low"], mean["ci_high"]) == (own["value"], own["ci_low"], own["ci_high"])
        assert "std 0;" in mean["note"]
    reordered = tmp_path / "reordered.parquet"
    pd.read_parquet(first).iloc[::-1].to_parquet(reordered)
    refused = _score(tmp_path, "--predictions", f"p50={first}", "--predictions", f"p50-seed1={reordered}")
    assert refused.exit_code == 3 and "are seeds of p50 but do not hold the same reports" in refused.output
    twice = _score(tmp_path, "--predictions", f"p50={first}", "--predictions", f"p50-seed0={first}")
    assert twice.exit_code == 3 and "are both seed 0 of p50" in twice.output


def test_default_predictions_and_skipped_rows(tmp_path, report_pairs):
    refs, gens = report_pairs
    _write_generate_folder(tmp_path, "p100", refs, gens)
    result = _score(tmp_path)
    assert result.exit_code == 0, result.output
    metrics = read_table(tmp_path / "Results/m/r/llava-report/metrics.parquet", "metrics")
    assert set(metrics["subset"]) == {"p100"}
    skipped = metrics[metrics["value"].isna()]
    assert len(skipped) == 9  # 8 CheXbert rows and F1-RadGraph: never a silent zero
    assert skipped["note"].str.startswith("skipped: weights missing (--").all()
    assert skipped["ci_low"].isna().all()
    assert _score(tmp_path, "--bootstrap", "0").exit_code == 0  # no resamples: the original's rows say so
    original = tmp_path / "Results/m/r/llava-report/original"
    main_csv = pd.read_csv(original / "main_p100.csv", index_col=0)
    assert main_csv.loc["median", "BLEU-1"] == main_csv.loc["point", "BLEU-1"] and main_csv.loc["ci_l"].isna().all()
    rows = pd.read_csv(original / "main_rows.csv").set_index(["row", "column"])["meaning"]
    assert rows["median", "ROUGE-L"] == "value on all reports (no resamples: --bootstrap 0)"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"prompt_id": [1], "reference": ["a"]}), "missing column(s) generated"),
        (pd.DataFrame({"prompt_id": [1, 2], "reference": ["a", ""], "generated": ["a", "b"]}), "row 2 (line 3)"),
        (pd.DataFrame({"prompt_id": [1, 1], "reference": ["a", "b"], "generated": ["a", "b"]}), "appears twice"),
    ],
)
def test_bad_predictions_give_one_line(tmp_path, frame, message):
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    result = _score(tmp_path, "--predictions", str(path))
    assert result.exit_code == 3, result.output
    assert message in result.output and str(path) in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_resources_are_clear(tmp_path, report_pairs, tiny_chexbert):
    refs, gens = report_pairs
    predictions = _write_generate_folder(tmp_path, "p10", refs, gens)
    nothing = CliRunner().invoke(main, ["score", "--results", str(tmp_path / "none"), "--model", "m"])
    assert nothing.exit_code == 3 and "no finished generate-*/predictions.parquet" in nothing.output
    radgraph = _score(tmp_path, "--predictions", str(predictions), "--radgraph-model", str(tmp_path))
    assert radgraph.exit_code == 5 and "make setup-radgraph" in radgraph.output
    no_tokenizer = _score(tmp_path, "--predictions", str(predictions), "--chexbert", str(predictions))
    assert no_tokenizer.exit_code == 3 and "--chexbert-tokenizer" in no_tokenizer.output
    not_chexbert = tmp_path / "x.pth"
    not_chexbert.write_bytes(b"not a checkpoint")
    bad = _score(
        tmp_path,
        "--predictions",
        str(predictions),
        "--chexbert",
        str(not_chexbert),
        "--chexbert-tokenizer",
        str(tmp_path),
    )
    assert bad.exit_code == 5 and "vocab.txt" in bad.output
    garbage = _score(
        tmp_path,
        "--predictions",
        str(predictions),
        "--chexbert",
        str(not_chexbert),
        "--chexbert-tokenizer",
        str(tiny_chexbert[1]),
    )
    assert garbage.exit_code == 3 and "not a readable torch checkpoint" in garbage.output


def test_a_failed_rerun_leaves_no_stale_result(tmp_path, report_pairs):
    refs, gens = report_pairs
    predictions = _write_generate_folder(tmp_path, "p10", refs, gens)
    assert _score(tmp_path, "--predictions", str(predictions)).exit_code == 0
    stage = tmp_path / "Results/m/r/llava-report"
    pd.DataFrame({"prompt_id": [1], "reference": [None], "generated": ["x"]}).to_parquet(predictions)
    result = _score(tmp_path, "--predictions", str(predictions))
    assert result.exit_code == 3
    assert not (stage / "_SUCCESS").exists()
    assert json.loads((stage / "manifest.json").read_text())["status"] == "failed"
