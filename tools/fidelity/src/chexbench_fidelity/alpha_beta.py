"""α-precision and β-recall (Alaa et al. 2022, "How faithful is your synthetic data?"), the embedding-space variant
without the one-class network (synthcity's `_naive` results, SIM Toolkit and pyMDMA report the same quantities).

α-precision(α): the fraction of synthetic points inside the ball around the real centre that holds the α-quantile
of real points. β-recall(β): the fraction of real points whose nearest synthetic point is nearer than their nearest
other real point *and* lies inside the β-quantile ball of those nearest synthetic points around the synthetic centre.
Each curve is summarised as 1 − Σ|α − curve(α)| / Σα over α on a 30-step grid (1 = ideal, as in the paper).

Per image, the α at which a synthetic image enters the real support (its "α level": the fraction of real points
nearer the centre) and, per real image, whether it is covered, so the worst cases can be shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from chexbench_common.neighbours import knn_radii_sq, nearest

STEPS = 30


@dataclass(frozen=True)
class AlphaBeta:
    alphas: np.ndarray
    precision_curve: np.ndarray
    recall_curve: np.ndarray
    alpha_precision: float
    beta_recall: float
    synth_alpha_level: np.ndarray  # per synthetic image, in [0, 1]; 1 = outside every real ball
    real_covered: np.ndarray  # per real image: its nearest synthetic image is nearer than its nearest real one
    real_nn_synth: np.ndarray  # per real image: index of its nearest synthetic image


def _summary(alphas: np.ndarray, curve: np.ndarray) -> float:
    return float(1 - np.abs(alphas - curve).sum() / alphas.sum())


def alpha_beta(real: np.ndarray, synth: np.ndarray, steps: int = STEPS) -> AlphaBeta:
    """Both curves and their summaries; needs at least 2 real and 1 synthetic point."""
    real, synth = np.asarray(real, dtype=np.float64), np.asarray(synth, dtype=np.float64)
    alphas = np.linspace(0, 1, steps)
    centre = real.mean(axis=0)
    real_radius = np.linalg.norm(real - centre, axis=1)
    synth_radius = np.linalg.norm(synth - centre, axis=1)
    radii = np.quantile(real_radius, alphas)
    precision = (synth_radius[None, :] <= radii[:, None]).mean(axis=1)

    real_to_real = np.sqrt(knn_radii_sq(real, 1))  # to the nearest other real point (0 for a duplicate)
    real_to_synth, closest = (column[:, 0] for column in nearest(real, synth, 1))
    closest_radius = np.linalg.norm(synth[closest] - synth.mean(axis=0), axis=1)
    closest_radii = np.quantile(closest_radius, alphas)
    covered = real_to_synth <= real_to_real
    recall = (covered[None, :] & (closest_radius[None, :] <= closest_radii[:, None])).mean(axis=1)

    level = np.searchsorted(np.sort(real_radius), synth_radius, side="left") / len(real_radius)
    return AlphaBeta(
        alphas=alphas,
        precision_curve=precision,
        recall_curve=recall,
        alpha_precision=_summary(alphas, precision),
        beta_recall=_summary(alphas, recall),
        synth_alpha_level=level,
        real_covered=covered,
        real_nn_synth=closest,
    )
