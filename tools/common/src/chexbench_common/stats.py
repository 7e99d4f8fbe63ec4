"""Confidence intervals shared by the stages (numpy only)."""

from __future__ import annotations

import numpy as np


def cluster_bootstrap(
    values: np.ndarray, replicates: int, level: float, seed: int, clusters: np.ndarray | None = None
) -> tuple[float, float]:
    """Percentile interval of the mean of `values`, resampling whole clusters (e.g. the prompt an image came from;
    each value its own cluster when `clusters` is None). NaN, NaN with fewer than 2 clusters or no replicates."""
    values = np.asarray(values, dtype=float)
    if clusters is None:
        sums, counts = values, np.ones(len(values))
    else:
        _, index = np.unique(np.asarray(clusters), return_inverse=True)
        sums, counts = np.bincount(index, weights=values), np.bincount(index).astype(float)
    if replicates <= 0 or len(sums) < 2:
        return float("nan"), float("nan")
    draws = np.random.default_rng(seed).integers(0, len(sums), size=(replicates, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def bootstrap_counts(n: int, replicates: int, seed: int) -> np.ndarray:
    """How often each of `n` items is drawn in each replicate, shape (replicates, n): the same draws as
    `cluster_bootstrap` with one item per cluster, so a corpus statistic (BLEU, micro-F1) recomputed from weighted
    sums has the same resamples as a mean."""
    draws = np.random.default_rng(seed).integers(0, n, size=(replicates, n))
    counts = np.zeros((replicates, n), dtype=np.int64)
    np.add.at(counts, (np.arange(replicates)[:, None], draws), 1)
    return counts


def percentile_interval(replicate_values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN, NaN when there are none or all are NaN)."""
    values = np.asarray(replicate_values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))
