"""Test-set metrics of a multi-label classifier on a fixed class list, with bootstrap intervals over test images.

A class whose test labels hold no positive (or no negative) has no AUROC/AUPRC: it is reported as such and left out of
the macro means, which name the classes they average (the original dropped such classes silently). AUROC is the
Mann-Whitney statistic on tie-averaged ranks, vectorised over bootstrap replicates (equal to scikit-learn's
roc_auc_score, tested); AUPRC is scikit-learn's average precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, f1_score


def auroc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each row of (.., n) labels/scores; NaN where a row has only one class."""
    y, scores = np.asarray(y, dtype=bool), np.asarray(scores, dtype=float)
    ranks = rankdata(scores, axis=-1)
    pos = y.sum(axis=-1)
    neg = y.shape[-1] - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        value = ((ranks * y).sum(axis=-1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), value, np.nan)


def tune_thresholds(y: np.ndarray, probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per class, the probability threshold that maximises F1 on the validation set (0.5 where F1 is undefined)."""
    out = np.full(y.shape[1], 0.5)
    for c in range(y.shape[1]):
        yc, pc = y[mask[:, c], c], probs[mask[:, c], c]
        if yc.sum() == 0:
            continue
        order = np.argsort(-pc)
        tp = np.cumsum(yc[order])
        f1 = 2 * tp / (np.arange(1, len(pc) + 1) + yc.sum())
        out[c] = float(pc[order][int(f1.argmax())])
    return out


@dataclass
class Report:
    classes: tuple[str, ...]
    per_class: dict[str, np.ndarray]  # metric -> (n_classes,) values (NaN: undefined)
    overall: dict[str, float]
    averaged: tuple[str, ...]  # classes with both labels in the test set
    intervals: dict[str, tuple[float, float]]  # "<metric>" or "<metric>_<class>" -> (low, high)


def evaluate(
    y: np.ndarray,
    probs: np.ndarray,
    mask: np.ndarray,
    classes: tuple[str, ...],
    thresholds: np.ndarray,
    *,
    bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Report:
    y, probs, mask = np.asarray(y, dtype=float), np.asarray(probs, dtype=float), np.asarray(mask, dtype=bool)
    per_class = {name: np.full(len(classes), np.nan) for name in ("auc", "auprc", "f1_05", "f1_tuned", "prevalence")}
    for c in range(len(classes)):
        yc, pc = y[mask[:, c], c], probs[mask[:, c], c]
        per_class["prevalence"][c] = yc.mean() if len(yc) else np.nan
        if 0 < yc.sum() < len(yc):
            per_class["auc"][c] = auroc(yc, pc)
            per_class["auprc"][c] = average_precision_score(yc, pc)
        if len(yc):
            per_class["f1_05"][c] = f1_score(yc, pc >= 0.5, zero_division=0)
            per_class["f1_tuned"][c] = f1_score(yc, pc >= thresholds[c], zero_division=0)
    defined = ~np.isnan(per_class["auc"])
    flat_y, flat_p = y[mask], probs[mask]
    hard = probs >= 0.5
    overall = {
        "auc_macro": float(np.nanmean(per_class["auc"])) if defined.any() else float("nan"),
        "auprc_macro": float(np.nanmean(per_class["auprc"])) if defined.any() else float("nan"),
        "auc_micro": float(auroc(flat_y, flat_p)),
        "f1_macro_05": float(np.nanmean(per_class["f1_05"])),
        "f1_macro_tuned": float(np.nanmean(per_class["f1_tuned"])),
        "f1_micro_05": float(f1_score(flat_y, flat_p >= 0.5, zero_division=0)),
        "accuracy": float((hard[mask] == y[mask].astype(bool)).mean()),
    }
    intervals = _bootstrap(y, probs, mask, classes, defined, bootstrap, level, seed) if bootstrap else {}
    return Report(classes, per_class, overall, tuple(np.asarray(classes)[defined]), intervals)


def _bootstrap(y, probs, mask, classes, defined, replicates, level, seed) -> dict[str, tuple[float, float]]:
    """Percentile intervals of per-class AUROC and macro AUROC/AUPRC, test images resampled."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(y), size=(replicates, len(y)))
    aucs = np.full((replicates, len(classes)), np.nan)
    auprcs = np.full((replicates, len(classes)), np.nan)
    for c in np.flatnonzero(defined):
        if mask[:, c].all():  # all replicates at once
            aucs[:, c] = auroc(y[draws, c], probs[draws, c])
        else:  # U-Ignore leaves entries out: replicate by replicate
            aucs[:, c] = [auroc(y[d, c][mask[d, c]], probs[d, c][mask[d, c]]) for d in draws]
        for r, d in enumerate(draws):
            yr, pr = y[d, c][mask[d, c]], probs[d, c][mask[d, c]]
            if 0 < yr.sum() < len(yr):
                auprcs[r, c] = average_precision_score(yr, pr)
    alpha = (1 - level) / 2
    out = {}
    with np.errstate(all="ignore"):
        for c in np.flatnonzero(defined):
            vals = aucs[:, c][~np.isnan(aucs[:, c])]
            if len(vals) >= 2:
                out[f"auc_{classes[c]}"] = (float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha)))
        for name, table in (("auc_macro", aucs), ("auprc_macro", auprcs)):
            means = np.nanmean(table[:, defined], axis=1)
            means = means[~np.isnan(means)]
            if len(means) >= 2:
                out[name] = (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))
    return out
