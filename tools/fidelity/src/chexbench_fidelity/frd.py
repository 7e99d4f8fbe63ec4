"""Fréchet Radiomics Distance: ln of the Fréchet distance between Gaussian fits of z-scored radiomics features.

Input: two (n, d) matrices whose columns are the same features, from `chexbench_embed.radiomics.RadiomicsTransform`
(rows = images, NaN where a feature is undefined). As in FRD v1 / CheXGenBench: every feature is z-scored with the
real set's mean and standard deviation, features that are not finite on either side are dropped, and
FRD = ln FD with FD = ‖μ_r − μ_s‖² + Tr Σ_r + Tr Σ_s − 2 Tr √(Σ_r Σ_s) (the squared form, as `frechet.py` computes
it; frd-score's default convention). Fixed here, unlike the original: every image counts (no N mod 16 remainder
dropped, no random subsampling to equal sizes); rows that are entirely non-finite (flat images) are left out and
counted instead of voiding every feature; features with zero variance on the real side (undefined z-score) are
dropped; all arithmetic is float64.
"""

from __future__ import annotations

import numpy as np

from chexbench_fidelity.frechet import fit_gaussian, frechet_distance, frechet_distance_low_rank


def zscore_with_real(real: np.ndarray, synth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(real_z, synth_z, kept column indices, notes): both sets z-scored (float64) with the real set's mean/std.

    Rows with no finite value are removed first; then columns with any non-finite value on either side, and
    columns constant on the real side, are dropped. The std has divisor n (numpy's default, as frd-score); the
    covariances of the Fréchet distance have divisor n − 1.
    """
    real, synth = np.asarray(real, dtype=np.float64), np.asarray(synth, dtype=np.float64)
    if real.ndim != 2 or synth.ndim != 2 or real.shape[1] != synth.shape[1]:
        raise ValueError(f"expected two (n, d) matrices with the same d, got {real.shape} and {synth.shape}")
    notes = []
    sets = {}
    for name, x in (("real", real), ("synthetic", synth)):
        empty = ~np.isfinite(x).any(axis=1)
        if empty.any():
            notes.append(f"{int(empty.sum())} {name} image(s) without any finite feature (flat) left out")
        sets[name] = x[~empty]
    real, synth = sets["real"], sets["synthetic"]
    if len(real) < 2 or len(synth) < 2:
        raise ValueError(f"FRD needs at least 2 images per set, got {len(real)} real and {len(synth)} synthetic")
    finite = np.isfinite(real).all(axis=0) & np.isfinite(synth).all(axis=0)
    mean = np.where(finite, real, 0.0).mean(axis=0)
    std = np.where(finite, real, 0.0).std(axis=0)
    keep = np.flatnonzero(finite & (std > 0))
    if (~finite).any():
        notes.append(f"{int((~finite).sum())} feature(s) not finite on either side dropped")
    if (finite & (std == 0)).any():
        notes.append(f"{int((finite & (std == 0)).sum())} feature(s) constant on the real side dropped")
    if keep.size == 0:
        raise ValueError("no feature is finite on both sides and varies on the real side")
    mean, std = mean[keep], std[keep]
    return (real[:, keep] - mean) / std, (synth[:, keep] - mean) / std, keep, notes


def frechet_radiomics_distance(real: np.ndarray, synth: np.ndarray) -> tuple[float, int, str]:
    """(FRD = ln FD, number of features used, note listing what was dropped; "" when nothing was)."""
    real_z, synth_z, keep, notes = zscore_with_real(real, synth)
    if min(len(real_z), len(synth_z)) < keep.size:  # the exact sample route: O(n²d) instead of O(d³)
        fd = frechet_distance_low_rank(real_z, synth_z)
    else:
        fd = frechet_distance(fit_gaussian(real_z), fit_gaussian(synth_z))
    if fd <= 0.0:  # identical sets, up to rounding
        notes.append(f"Fréchet distance {fd:.3g} <= 0: FRD is -inf")
        return float("-inf"), int(keep.size), "; ".join(notes)
    return float(np.log(fd)), int(keep.size), "; ".join(notes)
