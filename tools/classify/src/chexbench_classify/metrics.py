"""Test-set metrics of a multi-label classifier on a fixed class list, with percentile intervals from a bootstrap over
patients.

- One label set per row: the labels with both classes (after the uncertainty policy) in the test set. Every macro
  metric averages exactly these labels, and a per-class metric of a label outside the set is undefined.
- Cluster bootstrap: patients are drawn with replacement and bring all their test images (a row without a patient id
  is its own patient). A resample is *kept* for a label's interval when that label still has both classes in it, and
  for a macro interval when every label of the row's set does; how many were kept is reported with each interval,
  and an interval kept from fewer than half of the resamples is not reported.
- The mean over seeds gets a two-level bootstrap: each replicate draws the patients (the same draws as every seed's
  own interval) and the seeds, both with replacement, and averages the drawn seeds' metrics on the drawn patients.

AUROC is the Mann-Whitney statistic on tie-averaged ranks (equal to scikit-learn's roc_auc_score, tested); the point
values of AUPRC and F1 are scikit-learn's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, f1_score

PER_CLASS = ("auc", "auprc", "f1_05", "f1_tuned", "prevalence")
OVERALL = ("accuracy", "auc_macro", "auprc_macro", "auc_micro", "f1_macro_05", "f1_macro_tuned", "f1_micro_05")
MACRO_OF = {"auc_macro": "auc", "auprc_macro": "auprc", "f1_macro_05": "f1_05", "f1_macro_tuned": "f1_tuned"}
MICRO_CHUNK = 64  # replicates per step of the micro AUROC (its weights are replicates x images x classes)
# an interval needs at least this share of the resamples kept: below it, the kept ones are no longer the sampling
# distribution but the rare resamples in which every label happened to keep both classes (a tiny test set)
MIN_KEPT = 0.5


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


# --- the bootstrap ---------------------------------------------------------------------------------------------------


def patient_groups(patient_id: pd.Series, row_id: pd.Series) -> np.ndarray:
    """The bootstrap's cluster of each test row: its patient, or the row itself when it has no patient id."""
    return patient_id.astype(object).where(patient_id.notna(), "row:" + row_id.astype(str)).to_numpy()


def draw_patients(n_patients: int, replicates: int, seed: int) -> np.ndarray:
    """(replicates, n_patients) indices of the patients each resample draws, with replacement."""
    return np.random.default_rng(seed).integers(0, n_patients, size=(replicates, n_patients))


def resample_weights(groups: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(replicates, n_rows): how many times each test row is in each resample, i.e. its patient's count among the
    draws (patients numbered in order of first appearance)."""
    codes, uniques = pd.factorize(groups)
    counts = np.zeros((len(draws), len(uniques)), dtype=int)
    for r, d in enumerate(draws):
        counts[r] = np.bincount(d, minlength=len(uniques))
    return counts[:, codes].astype(float)


# Resample statistics below take multiplicity weights w (R, n): resample r is the test set with row i counted w[r, i]
# times, so all replicates of a class are one vectorised pass over the scores sorted once, ~100x faster than
# scikit-learn per resample (1000 resamples x 14 classes x 4 metrics per setting and seed); equal to scikit-learn on
# the expanded resample, tested.


def _sorted(scores: np.ndarray, w: np.ndarray, descending: bool):
    """Weights in score order and, per sorted item, where its group of tied scores starts and ends (exclusive)."""
    order = np.argsort(-scores if descending else scores, kind="mergesort")
    s = scores[order]
    new_group = np.r_[True, s[1:] != s[:-1]]
    starts = np.flatnonzero(new_group)
    group = np.cumsum(new_group) - 1
    ends = np.r_[starts[1:], len(s)]
    return order, np.take(w, order, axis=1), starts[group], ends[group]


def _cumulative(values: np.ndarray) -> np.ndarray:
    """Running sums along each resample with a leading zero: out[:, k] = sum of items < k."""
    out = np.zeros((len(values), values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def weighted_auroc(y: np.ndarray, scores: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(R,) AUROC per row of weights w (R, n); NaN where a resample lacks a class. Each positive counts the
    negatives scored below it and half of those tied with it."""
    order, wo, start, end = _sorted(scores, w, descending=False)
    positive = y[order].astype(bool)
    pos = wo[:, positive]
    below = _cumulative(wo * ~positive)
    p = pos.sum(axis=1)
    n = wo.sum(axis=1) - p
    counted = 0.5 * (np.take(below, start[positive], axis=1) + np.take(below, end[positive], axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (pos * counted).sum(axis=1) / (p * n)
    return np.where((p > 0) & (n > 0), value, np.nan)


def weighted_average_precision(y: np.ndarray, scores: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(R,) average precision (scikit-learn's step-wise definition: each positive weighs the precision at its own
    score's threshold) per row of weights; NaN without positives."""
    order, wo, _, end = _sorted(scores, w, descending=True)
    positive = y[order].astype(bool)
    pos = wo[:, positive]
    tp = np.take(_cumulative(wo * positive), end[positive], axis=1)
    called = np.take(_cumulative(wo), end[positive], axis=1)
    precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
    p = pos.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, (pos * precision).sum(axis=1) / p, np.nan)


def _counts(y: np.ndarray, hard: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, hard = y.astype(bool), hard.astype(bool)
    return w @ (y & hard), w @ (~y & hard), w @ (y & ~hard)


def _f1(tp, fp, fn) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=denominator > 0)


# --- the report ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    low: float | None
    high: float | None
    kept: int  # resamples in which the statistic was defined (see the module docstring)
    total: int


def interval(values: np.ndarray, level: float) -> Interval:
    """Percentile interval of the kept (non-NaN) replicate values; none when fewer than MIN_KEPT of them were kept."""
    kept = values[~np.isnan(values)]
    if len(kept) < max(2, MIN_KEPT * len(values)):
        return Interval(None, None, len(kept), len(values))
    alpha = (1 - level) / 2
    low, high = np.quantile(kept, [alpha, 1 - alpha])
    return Interval(float(low), float(high), len(kept), len(values))


@dataclass
class Report:
    classes: tuple[str, ...]
    per_class: dict[str, np.ndarray]  # metric -> (n_classes,) values (NaN: undefined)
    overall: dict[str, float]
    averaged: tuple[str, ...]  # the row's label set: classes with both labels in the test set
    replicates: dict[str, np.ndarray]  # "<metric>" or "<metric>_<class>" -> (R,) values, NaN where not kept
    intervals: dict[str, Interval]

    def values(self) -> dict[str, float]:
        """Every metric of the row by name: the overall ones and `<metric>_<class>`."""
        out = dict(self.overall)
        for name, values in self.per_class.items():
            out.update({f"{name}_{label}": float(v) for label, v in zip(self.classes, values, strict=True)})
        return out


def evaluate(
    y: np.ndarray,
    probs: np.ndarray,
    mask: np.ndarray,
    classes: tuple[str, ...],
    thresholds: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    level: float = 0.95,
) -> Report:
    """Point values and, given resample weights (R, n) (resample_weights), the replicates and their intervals."""
    y, probs, mask = np.asarray(y, dtype=float), np.asarray(probs, dtype=float), np.asarray(mask, dtype=bool)
    per_class = {name: np.full(len(classes), np.nan) for name in PER_CLASS}
    defined = np.zeros(len(classes), dtype=bool)
    for c in range(len(classes)):
        yc, pc = y[mask[:, c], c], probs[mask[:, c], c]
        per_class["prevalence"][c] = yc.mean() if len(yc) else np.nan
        defined[c] = 0 < yc.sum() < len(yc)
        if defined[c]:
            per_class["auc"][c] = auroc(yc, pc)
            per_class["auprc"][c] = average_precision_score(yc, pc)
            per_class["f1_05"][c] = f1_score(yc, pc >= 0.5, zero_division=0)
            per_class["f1_tuned"][c] = f1_score(yc, pc >= thresholds[c], zero_division=0)
    flat_y, flat_p = y[mask], probs[mask]
    overall = {
        "accuracy": float(((probs >= 0.5)[mask] == flat_y.astype(bool)).mean()),
        **{macro: _mean(per_class[name][defined]) for macro, name in MACRO_OF.items()},
        "auc_micro": float(auroc(flat_y, flat_p)),
        "f1_micro_05": float(f1_score(flat_y, flat_p >= 0.5, zero_division=0)),
    }
    averaged = tuple(np.asarray(classes)[defined])
    if weights is None or not len(weights):
        return Report(tuple(classes), per_class, overall, averaged, {}, {})
    replicates = _replicates(y, probs, mask, classes, thresholds, defined, np.asarray(weights, dtype=float))
    intervals = {name: interval(values, level) for name, values in replicates.items()}
    return Report(tuple(classes), per_class, overall, averaged, replicates, intervals)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def _replicates(y, probs, mask, classes, thresholds, defined, w) -> dict[str, np.ndarray]:
    """(R,) values of every metric over the resamples given by weights w (R, n)."""
    out: dict[str, np.ndarray] = {}
    replicates = len(w)
    per_class = {name: np.full((replicates, len(classes)), np.nan) for name in PER_CLASS}
    tp, fp, fn = (np.zeros(replicates) for _ in range(3))
    correct, entries = np.zeros(replicates), np.zeros(replicates)
    for c in range(len(classes)):
        wc, yc, pc = (w if mask[:, c].all() else w * mask[:, c]), y[:, c], probs[:, c]
        counted = wc.sum(axis=1)
        positives = wc @ yc
        both = (positives > 0) & (positives < counted)
        hard = pc >= 0.5
        tp_c, fp_c, fn_c = _counts(yc, hard, wc)
        tp, fp, fn = tp + tp_c, fp + fp_c, fn + fn_c
        correct += wc @ (hard == yc.astype(bool))
        entries += counted
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class["prevalence"][:, c] = np.where(counted > 0, positives / counted, np.nan)
        if defined[c]:
            per_class["auc"][:, c] = weighted_auroc(yc, pc, wc)
            per_class["auprc"][:, c] = np.where(both, weighted_average_precision(yc, pc, wc), np.nan)
            per_class["f1_05"][:, c] = np.where(both, _f1(tp_c, fp_c, fn_c), np.nan)
            per_class["f1_tuned"][:, c] = np.where(both, _f1(*_counts(yc, pc >= thresholds[c], wc)), np.nan)
    for name, table in per_class.items():
        out.update({f"{name}_{label}": table[:, c] for c, label in enumerate(classes)})
    with np.errstate(divide="ignore", invalid="ignore"):
        out["accuracy"] = np.where(entries > 0, correct / entries, np.nan)
    for macro, name in MACRO_OF.items():
        chosen = per_class[name][:, defined]
        # a resample in which a label of the row's set lost a class is not kept (NaN propagates through the mean)
        out[macro] = chosen.mean(axis=1) if chosen.shape[1] else np.full(replicates, np.nan)
    out["auc_micro"] = _micro_auroc(y, probs, mask, w)
    out["f1_micro_05"] = np.where(tp + fn > 0, _f1(tp, fp, fn), np.nan)
    return out


def _micro_auroc(y, probs, mask, w) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    flat_y, flat_p = y[rows, cols], probs[rows, cols]
    chunks = range(0, len(w), MICRO_CHUNK)
    return np.concatenate([weighted_auroc(flat_y, flat_p, w[i : i + MICRO_CHUNK][:, rows]) for i in chunks])


@dataclass(frozen=True)
class SeedMean:
    value: float
    std: float  # over seeds (ddof 1; 0 with one seed)
    interval: Interval


def draw_seeds(n_seeds: int, replicates: int, seed: int) -> np.ndarray:
    """(replicates, n_seeds) indices of the seeds each replicate of the mean over seeds draws, with replacement."""
    return np.random.default_rng(seed).integers(0, n_seeds, size=(replicates, n_seeds))


def mean_over_seeds(reports: list[Report], seed_draws: np.ndarray | None, level: float) -> dict[str, SeedMean]:
    """Per metric: the mean over seeds, its std, and the two-level bootstrap interval (patients and seeds resampled;
    the reports' replicates must share the patient draws)."""
    out, points = {}, [r.values() for r in reports]
    for name in points[0]:
        values = np.array([p[name] for p in points])
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        if seed_draws is None or name not in reports[0].replicates:
            out[name] = SeedMean(mean, std, Interval(None, None, 0, 0))
            continue
        table = np.stack([r.replicates[name] for r in reports], axis=1)  # (R, seeds)
        drawn = np.take_along_axis(table, seed_draws, axis=1).mean(axis=1)
        out[name] = SeedMean(mean, std, interval(drawn, level))
    return out
