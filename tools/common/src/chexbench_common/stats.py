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
