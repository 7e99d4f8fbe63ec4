"""CheXbert, natively: BERT-base + 13 four-way heads + one two-way head (No Finding) loaded from a local
`chexbert.pth`, and the label F1 that LLaVA-Rad reports (micro/macro over 14 and 5 conditions, uncertain as negative
or positive).

Re-implemented because the reference package (f1chexbert 0.0.2) fails on transformers 5; its facts kept here: the
checkpoint holds `model_state_dict` with `module.bert.*` and `module.linear_heads.{i}.*`; head outputs are
0 blank, 1 positive, 2 negative, 3 uncertain (No Finding: 0 blank, 1 positive); reports are stripped, newlines and
runs of whitespace become one space, WordPiece-tokenised, [CLS] ... [SEP], cut to 511 tokens + [SEP]; an empty
report is [CLS] [SEP]; the label is the argmax of each head on the [CLS] state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from chexbench_common.errors import BadInputError, MissingResourceError

CONDITIONS = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)
FIVE = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
BLANK, POSITIVE, NEGATIVE, UNCERTAIN = 0, 1, 2, 3
MAX_TOKENS = 512


def normalise(report: str) -> str:
    """Whitespace as CheXbert's labeler sees it: stripped, newlines and runs of blanks become one space."""
    return re.sub(r"\s+", " ", report.strip().replace("\n", " ")).strip()


def encode(report: str, tokenizer) -> list[int]:
    """[CLS] wordpieces [SEP], at most 512 ids (511 + [SEP]); an empty report is [CLS] [SEP]."""
    tokens = tokenizer.tokenize(normalise(report))
    ids = [tokenizer.cls_token_id, *tokenizer.convert_tokens_to_ids(tokens), tokenizer.sep_token_id]
    return ids if len(ids) <= MAX_TOKENS else [*ids[: MAX_TOKENS - 1], tokenizer.sep_token_id]


def _labeler_class():
    import torch
    from torch import nn
    from transformers import BertModel

    class Labeler(nn.Module):
        """BERT + one linear head per condition on the [CLS] state (13 x 4 classes, No Finding x 2)."""

        def __init__(self, config):
            super().__init__()
            self.bert = BertModel(config, add_pooling_layer=True)
            self.linear_heads = nn.ModuleList(
                [nn.Linear(config.hidden_size, 4) for _ in range(13)] + [nn.Linear(config.hidden_size, 2)]
            )

        @torch.no_grad()
        def forward(self, input_ids, attention_mask):
            cls = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
            return torch.stack([head(cls).argmax(dim=1) for head in self.linear_heads], dim=1)

    return Labeler


@dataclass
class CheXbert:
    model: object
    tokenizer: object
    device: object

    @classmethod
    def load(cls, checkpoint: Path, tokenizer_dir: Path, device) -> CheXbert:
        """The labeler from `chexbert.pth` (loaded with weights_only) and a local bert-base-uncased folder (vocab,
        and config.json when present; without it the bert-base configuration)."""
        import torch
        from transformers import BertConfig, BertTokenizer

        if not Path(checkpoint).is_file():
            raise MissingResourceError(f"{checkpoint}: CheXbert checkpoint not found (--chexbert chexbert.pth)")
        if not (Path(tokenizer_dir) / "vocab.txt").is_file():
            raise MissingResourceError(
                f"{tokenizer_dir}: no vocab.txt; --chexbert-tokenizer must be a local bert-base-uncased folder"
            )
        try:
            saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise BadInputError(f"{checkpoint}: not a readable torch checkpoint ({exc.__class__.__name__})") from None
        if not isinstance(saved, dict) or "model_state_dict" not in saved:
            raise BadInputError(f"{checkpoint}: no 'model_state_dict'; expected CheXbert's chexbert.pth")
        state = {k.removeprefix("module."): v for k, v in saved["model_state_dict"].items()}
        state.pop("bert.embeddings.position_ids", None)  # a buffer older transformers saved; rebuilt here
        has_config = (Path(tokenizer_dir) / "config.json").is_file()
        config = BertConfig.from_pretrained(tokenizer_dir) if has_config else BertConfig()
        model = _labeler_class()(config)
        problems = model.load_state_dict(state, strict=False)
        shape_ok = all(state[k].shape == v.shape for k, v in model.state_dict().items() if k in state)
        if problems.missing_keys or problems.unexpected_keys or not shape_ok:
            raise BadInputError(
                f"{checkpoint}: does not fit BERT ({config.num_hidden_layers} layers, hidden {config.hidden_size}) "
                f"+ 14 heads: missing {problems.missing_keys[:3]}, unexpected {problems.unexpected_keys[:3]}; "
                "check --chexbert and the config.json in --chexbert-tokenizer"
            )
        tokenizer = BertTokenizer.from_pretrained(tokenizer_dir)
        return cls(model.eval().to(device), tokenizer, device)

    def label(self, reports: list[str], batch_size: int = 32, progress=None) -> np.ndarray:
        """Head classes per report and condition, shape (n, 14), values 0 blank, 1 positive, 2 negative, 3
        uncertain. Reports are batched by length; padding is masked, so batching does not change a label."""
        import torch

        encoded = [encode(r, self.tokenizer) for r in reports]
        order = np.argsort([len(e) for e in encoded], kind="stable")
        out = np.zeros((len(reports), len(CONDITIONS)), dtype=np.int64)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, i in enumerate(rows):
                ids[j, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[j, : len(encoded[i])] = 1
            out[rows] = self.model(ids.to(self.device), mask.to(self.device)).cpu().numpy()
            if progress is not None:
                progress.update(len(rows))
        return out


def binary(classes: np.ndarray, uncertain_positive: bool) -> np.ndarray:
    """Positive -> 1; uncertain -> 1 ("+") or 0 ("-"); blank and negative -> 0."""
    positive = classes == POSITIVE
    return (positive | (classes == UNCERTAIN)) if uncertain_positive else positive


@dataclass
class LabelCounts:
    """Per-report true positives, false positives and false negatives per condition (n, 14), so that F1 can be
    recomputed from weighted sums on every bootstrap resample."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def of(cls, reference: np.ndarray, generated: np.ndarray) -> LabelCounts:
        ref, gen = reference.astype(bool), generated.astype(bool)
        return cls((ref & gen).astype(np.int64), (~ref & gen).astype(np.int64), (ref & ~gen).astype(np.int64))

    def totals(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Summed counts per condition; with `weights` (replicates, n) one row per replicate."""
        if weights is None:
            return self.tp.sum(0), self.fp.sum(0), self.fn.sum(0)
        return weights @ self.tp, weights @ self.fp, weights @ self.fn


def _ratio(num, den):
    """num / den with 0 where den is 0 (sklearn's zero_division default, which f1chexbert's report uses)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def f1_scores(tp, fp, fn, columns) -> dict[str, np.ndarray]:
    """Micro and macro F1 over `columns` (condition indices), from counts shaped (..., 14)."""
    tp, fp, fn = (np.asarray(x)[..., list(columns)] for x in (tp, fp, fn))
    per_label = _ratio(2 * tp, 2 * tp + fp + fn)
    micro = _ratio(2 * tp.sum(-1), 2 * tp.sum(-1) + fp.sum(-1) + fn.sum(-1))
    return {"micro": micro, "macro": per_label.mean(-1)}


def per_label(tp, fp, fn) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per condition, as a classification report gives them."""
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {"precision": precision, "recall": recall, "f1": _ratio(2 * tp, 2 * tp + fp + fn), "support": tp + fn}


_TINY_TEXT = (
    "no acute cardiopulmonary process the heart is normal size mild moderate severe cardiomegaly enlarged "
    "cardiomediastinum lungs are clear there pulmonary edema small large left right bilateral pleural effusion "
    "effusions focal consolidation pneumonia atelectasis bibasilar opacity opacities nodule lesion pneumothorax "
    "fracture rib tube line catheter in place stable unchanged since prior with without and of is a may be "
    "possible likely not seen . , ##s ##ing ##ed"
)
TINY_WORDS = tuple(_TINY_TEXT.split())  # the vocabulary of the tiny test models


def write_tiny_chexbert(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> tuple[Path, Path]:
    """A random CheXbert in the published layout, for tests, the demo and benchmarks: `chexbert.pth` with
    `model_state_dict` = `module.bert.*` + `module.linear_heads.{i}.*`, and a tokenizer folder (vocab.txt + a tiny
    BERT config.json). Built from transformers' BertModel and plain linear layers, not from this module's labeler."""
    import torch
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    tokenizer_dir = folder / "bert-tiny-uncased"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    vocab = list(
        dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS, *"abcdefghijklmnopqrstuvwxyz"])
    )
    (tokenizer_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=512,
        initializer_range=0.5,  # large random weights: the [CLS] state, hence the labels, vary with the text
    )
    config.save_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    bert = BertModel(config)
    state = {f"module.bert.{k}": v for k, v in bert.state_dict().items()}
    state["module.bert.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)  # as older checkpoints hold it
    for i in range(14):
        classes = 4 if i < 13 else 2
        state[f"module.linear_heads.{i}.weight"] = torch.randn(classes, hidden)
        state[f"module.linear_heads.{i}.bias"] = torch.zeros(classes)
    checkpoint = folder / "chexbert.pth"
    torch.save({"model_state_dict": state, "epoch": 1}, checkpoint)
    return checkpoint, tokenizer_dir
