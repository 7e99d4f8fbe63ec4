"""Confidence intervals on cached features, resampling prompts (a prompt's real image and all its synthetic images
move together).

* FID: B bootstrap replicates (prompts drawn with replacement; the covariances become Xᵀ diag(w) X).
* KID: the same draws of the whole sets' unbiased MMD² (the kernel matrices weighted by the multiplicities).
* P/R/D/C: resampling with replacement would put zero-distance duplicates into the k-NN balls, so B half-samples of
  the prompts without replacement are used instead (half-sampling: for mean-like statistics the spread of half-sample
  estimates equals the sampling spread of the full-sample estimate).

Both report a centred percentile interval: point + quantiles of (replicate − mean of replicates), which removes the
upward shift FID shows at smaller effective N.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .frechet import fit_gaussian, frechet_distance, frechet_distance_low_rank, psd_sqrt
from .kid import kernel_matrix
from .manifold import compute_prdc


@dataclass(frozen=True)
class Units:
    """Bootstrap unit code of each real and synthetic row; paired: the codes are shared prompts."""

    real: np.ndarray
    synth: np.ndarray
    count: int
    paired: bool

    @classmethod
    def from_labels(cls, real: np.ndarray, synth: np.ndarray, paired: bool) -> Units:
        codes, uniques = pd.factorize(np.concatenate([real, synth]))
        return cls(codes[: len(real)], codes[len(real) :], len(uniques), paired)

    def _sides(self) -> list[np.ndarray]:
        return (
            [np.unique(np.concatenate([self.real, self.synth]))]
            if self.paired
            else [np.unique(self.real), np.unique(self.synth)]
        )

    def resample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Row weights (multiplicities) of one with-replacement draw of the units."""
        counts = np.zeros(self.count, np.int64)
        for units in self._sides():
            np.add.at(counts, rng.choice(units, size=len(units), replace=True), 1)
        return counts[self.real], counts[self.synth]

    def half(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of one half-sample of the units without replacement."""
        chosen = np.zeros(self.count, bool)
        for units in self._sides():
            chosen[rng.choice(units, size=len(units) // 2, replace=False)] = True
        return np.flatnonzero(chosen[self.real]), np.flatnonzero(chosen[self.synth])


def centred_interval(
    point: float, replicates: np.ndarray, level: float, bounds: tuple[float, float] = (-np.inf, np.inf)
) -> tuple[float, float]:
    """point + the (1 ± level)/2 quantiles of replicates − mean(replicates), clipped to the metric's range."""
    spread = np.asarray(replicates) - np.mean(replicates)
    lo, hi = np.clip(point + np.quantile(spread, [(1 - level) / 2, (1 + level) / 2]), *bounds)
    return float(lo), float(hi)


def replicates(units: Units, reps: int, seed: int, tick: Callable[[], None], statistic) -> np.ndarray:
    """`statistic(w_real, w_synth)` of `reps` prompt-bootstrap draws; a draw it cannot use (None) is skipped."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        value = statistic(*units.resample(rng))
        if value is not None:
            out.append(value)
            tick()
    return np.asarray(out)


def fid_replicates(
    real: np.ndarray, synth: np.ndarray, units: Units, reps: int, seed: int, tick: Callable[[], None] = lambda: None
) -> np.ndarray:
    """FID of `reps` prompt-bootstrap replicates (weighted float64 covariances, √Σ_real per replicate)."""
    return replicates(units, reps, seed, tick, lambda w_real, w_synth: weighted_fid(real, synth, w_real, w_synth))


def weighted_fid(real: np.ndarray, synth: np.ndarray, w_real: np.ndarray, w_synth: np.ndarray) -> float | None:
    """FID of one bootstrap draw (rows weighted by their multiplicities); None when a side has fewer than 2 rows."""
    if w_real.sum() < 2 or w_synth.sum() < 2:
        return None
    if min(np.count_nonzero(w_real), np.count_nonzero(w_synth)) < real.shape[1]:
        return frechet_distance_low_rank(real, synth, w_real, w_synth)
    g_real = fit_gaussian(real, w_real)
    return frechet_distance(g_real, fit_gaussian(synth, w_synth), psd_sqrt(g_real.cov))


def kid_replicates(
    real: np.ndarray, synth: np.ndarray, units: Units, reps: int, seed: int, tick: Callable[[], None] = lambda: None
) -> np.ndarray:
    """Unbiased polynomial-kernel MMD² of the whole sets in `reps` prompt-bootstrap replicates: the kernel matrices
    once, then each draw's multiplicity-weighted sums (KID's subsets average this same U-statistic)."""
    k_rr, k_ss, k_rs = kernel_matrix(real, real), kernel_matrix(synth, synth), kernel_matrix(real, synth)
    return replicates(units, reps, seed, tick, lambda w_real, w_synth: weighted_mmd2(k_rr, k_ss, k_rs, w_real, w_synth))


def weighted_mmd2(
    k_rr: np.ndarray, k_ss: np.ndarray, k_rs: np.ndarray, w_real: np.ndarray, w_synth: np.ndarray
) -> float | None:
    """Unbiased MMD² of the multiset in which row i appears w_i times: within a set every pair of distinct
    positions (a row's copies pair with each other, never with themselves); None when a side has fewer than 2."""
    m, n = int(w_real.sum()), int(w_synth.sum())
    if m < 2 or n < 2:
        return None
    w, v = w_real.astype(np.float64), w_synth.astype(np.float64)
    xx = (w @ k_rr @ w - w @ np.diag(k_rr)) / (m * (m - 1))
    yy = (v @ k_ss @ v - v @ np.diag(k_ss)) / (n * (n - 1))
    return float(xx + yy - 2.0 * (w @ k_rs @ v) / (m * n))


def frd_replicates(
    real: np.ndarray, synth: np.ndarray, units: Units, reps: int, seed: int, tick: Callable[[], None] = lambda: None
) -> np.ndarray:
    """FRD of `reps` prompt-bootstrap replicates (rows repeated by their multiplicity; z-scored per replicate)."""
    from .frd import frechet_radiomics_distance

    def frd(w_real, w_synth):
        try:
            value, _, _ = frechet_radiomics_distance(np.repeat(real, w_real, axis=0), np.repeat(synth, w_synth, axis=0))
        except ValueError:  # a replicate without two usable images or features on a side
            return None
        return value if np.isfinite(value) else None

    return replicates(units, reps, seed, tick, frd)


def prdc_replicates(
    real: np.ndarray,
    synth: np.ndarray,
    units: Units,
    reps: int,
    seed: int,
    k: int,
    tile: int,
    tick: Callable[[], None] = lambda: None,
) -> dict[str, np.ndarray]:
    """P/R/D/C of `reps` half-samples of the prompts (without replacement)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"precision": [], "recall": [], "density": [], "coverage": []}
    for _ in range(reps):
        ri, si = units.half(rng)
        if len(ri) > k and len(si) > k:
            for name, value in compute_prdc(real[ri], synth[si], k, tile=tile).as_dict().items():
                out[name].append(value)
        tick()
    return {name: np.asarray(values) for name, values in out.items()}
