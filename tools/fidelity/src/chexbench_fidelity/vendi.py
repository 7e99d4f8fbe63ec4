"""The Vendi score (Friedman & Dieng 2023): exp of the Shannon entropy of the eigenvalues of K/n, K the cosine
similarity matrix of the samples (rows L2-normalised, as `vendi_score.vendi.score_X`).

K/n = X Xᵀ/n and the d×d matrix Xᵀ X/n have the same non-zero eigenvalues, so the cheaper one is decomposed: the
covariance form (n·d² + d³) when d ≤ n, the Gram form (n²·d + n³) otherwise. Sample weights p (a bootstrap
draw's multiplicities, normalised) give the weighted Vendi score, √p K √p, the same as repeating the rows.
The score lies in [1, min(n, d)]: 1 when every sample is the same up to scale, n when all are orthogonal.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)  # zero rows stay zero, as sklearn's normalize


def similarity_eigenvalues(x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Eigenvalues of the (weighted) cosine similarity matrix divided by the sample count."""
    keep = np.arange(len(x)) if weights is None else np.flatnonzero(weights)
    u = _unit_rows(x[keep])
    p = np.full(len(u), 1.0 / len(u)) if weights is None else weights[keep] / np.sum(weights[keep], dtype=np.float64)
    scaled = u * np.sqrt(p)[:, None]
    gram = scaled.T @ scaled if u.shape[1] <= len(u) else scaled @ scaled.T
    return scipy.linalg.eigvalsh(gram, check_finite=False)


def entropy(eigenvalues: np.ndarray) -> float:
    p = eigenvalues[eigenvalues > 0]
    return float(-(p * np.log(p)).sum())


def vendi_score(x: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Vendi score (order q = 1) of the rows of `x`, optionally weighted by multiplicities."""
    if len(x) == 0 or (weights is not None and not np.any(weights)):
        raise ValueError("the Vendi score needs at least one sample")
    return float(np.exp(entropy(similarity_eigenvalues(x, weights))))


def per_group_vendi(x: np.ndarray, groups: np.ndarray, min_size: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group codes, sizes, Vendi score) of every group of rows with at least `min_size` rows: the per-prompt form
    (each prompt's generations; 1 = all alike, i.e. mode collapse on that prompt)."""
    codes, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    chosen = np.flatnonzero(sizes >= min_size)
    scores = np.array([vendi_score(x[order[starts[g] : starts[g] + sizes[g]]]) for g in chosen])
    return codes[chosen], sizes[chosen], scores
