"""Inception Score from classifier logits (never from pool features), float64, seeded splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax, logsumexp


@dataclass(frozen=True)
class InceptionScore:
    """Mean and population std (ddof 0, as torch-fidelity and the original OpenAI code) over the splits."""

    mean: float
    std: float
    splits: int


def inception_score(
    logits: np.ndarray, *, splits: int = 10, seed: int = 0, order: np.ndarray | None = None
) -> InceptionScore:
    """exp(E_x KL(p(y|x) ‖ p(y))) per split after a seeded shuffle (`order` overrides it); splits as np.array_split."""
    n = len(logits)
    if n < splits:
        raise ValueError(f"Inception Score with {splits} splits needs at least {splits} samples, got {n}")
    order = np.random.default_rng(seed).permutation(n) if order is None else np.asarray(order)
    log_p = log_softmax(np.asarray(logits, dtype=np.float64)[order], axis=1)
    scores = []
    for part in np.array_split(log_p, splits):
        log_marginal = logsumexp(part, axis=0) - np.log(len(part))
        kl = (np.exp(part) * (part - log_marginal)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    scores = np.asarray(scores)
    return InceptionScore(float(scores.mean()), float(scores.std()), splits)
