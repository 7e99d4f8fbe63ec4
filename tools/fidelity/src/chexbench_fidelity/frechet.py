"""Gaussian statistics in float64 and the Fréchet distance by the symmetric route.

Tr √(Σ_r Σ_s) = Σ √λ(√Σ_r Σ_s √Σ_r): the matrix is symmetric PSD, so `eigh` applies (faster and more robust than
`scipy.linalg.sqrtm` or the non-symmetric `eigvals` the other libraries use), tiny negative eigenvalues from rounding
are clipped to 0, and √Σ_r is computed once per real set and cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

CHUNK_ROWS = 8192


@dataclass(frozen=True)
class Gaussian:
    """Sample mean and covariance (divisor n - 1) of a feature set, both float64."""

    n: int
    mean: np.ndarray
    cov: np.ndarray


def fit_gaussian(x: np.ndarray, weights: np.ndarray | None = None, chunk: int = CHUNK_ROWS) -> Gaussian:
    """Two-pass float64 mean and covariance; `weights` are integer multiplicities (bootstrap resamples)."""
    x = np.asarray(x)
    if weights is not None:
        keep = np.flatnonzero(weights)
        x, w = x[keep], np.asarray(weights, dtype=np.float64)[keep]
    else:
        w = None
    n = int(len(x) if w is None else w.sum())
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {n}")
    d = x.shape[1]
    total = np.zeros(d)
    for s in range(0, len(x), chunk):
        block = x[s : s + chunk].astype(np.float64)
        total += block.sum(0) if w is None else w[s : s + chunk] @ block
    mean = total / n
    cov = np.zeros((d, d))
    for s in range(0, len(x), chunk):
        block = x[s : s + chunk].astype(np.float64) - mean
        if w is not None:
            block *= np.sqrt(w[s : s + chunk])[:, None]
        cov += block.T @ block  # numpy detects the A.T @ A form and calls syrk
    cov /= n - 1
    return Gaussian(n, mean, _symmetric(cov))


def _symmetric(a: np.ndarray) -> np.ndarray:
    a += a.T
    a *= 0.5
    return a


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """The symmetric PSD square root, eigenvalues below 0 (rounding) clipped to 0."""
    w, v = scipy.linalg.eigh(cov, driver="evd", check_finite=False)
    v *= np.sqrt(np.sqrt(np.clip(w, 0.0, None)))  # (V w^¼)(V w^¼)ᵀ = V w^½ Vᵀ
    return _symmetric(v @ v.T)


def trace_sqrt_product(sqrt_a: np.ndarray, b: np.ndarray) -> float:
    """Tr √(A B) given √A: the sum of √ of the eigenvalues of √A B √A (negative rounding noise clipped)."""
    m = _symmetric(sqrt_a @ b @ sqrt_a)
    w = scipy.linalg.eigh(m, eigvals_only=True, driver="evd", check_finite=False)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(real: Gaussian, synth: Gaussian, sqrt_real: np.ndarray | None = None) -> float:
    """‖μ_r − μ_s‖² + Tr Σ_r + Tr Σ_s − 2 Tr √(Σ_r Σ_s), all in float64."""
    sqrt_real = psd_sqrt(real.cov) if sqrt_real is None else sqrt_real
    diff = real.mean - synth.mean
    traces = np.trace(real.cov) + np.trace(synth.cov)
    return float(diff @ diff + traces - 2.0 * trace_sqrt_product(sqrt_real, synth.cov))


def _scaled_centred_rows(x: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, M) with MᵀM = the covariance (divisor n - 1): centred rows scaled by √(w / (n - 1))."""
    x = np.asarray(x, dtype=np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = np.flatnonzero(w)
    x, w = x[keep], w[keep]
    n = w.sum()
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {int(n)}")
    mean = w @ x / n
    return mean, (x - mean) * np.sqrt(w / (n - 1))[:, None]


def frechet_distance_low_rank(
    real: np.ndarray, synth: np.ndarray, w_real: np.ndarray | None = None, w_synth: np.ndarray | None = None
) -> float:
    """The same Fréchet distance from the samples when there are fewer (distinct) rows than dimensions.

    With Σ_r = AᵀA and Σ_s = BᵀB, the non-zero eigenvalues of Σ_r Σ_s are those of (ABᵀ)(ABᵀ)ᵀ, so
    Tr √(Σ_r Σ_s) is the nuclear norm of the n_r × n_s matrix ABᵀ: exact, and O(n_r n_s d) instead of O(d³)
    (written here because no library offers it; it makes bootstrap CIs of small groups at d = 2048 cheap).
    """
    mean_r, a = _scaled_centred_rows(real, w_real)
    mean_s, b = _scaled_centred_rows(synth, w_synth)
    diff = mean_r - mean_s
    nuclear = scipy.linalg.svdvals(a @ b.T, check_finite=False).sum()
    return float(diff @ diff + np.einsum("ij,ij->", a, a) + np.einsum("ij,ij->", b, b) - 2.0 * nuclear)


@dataclass(frozen=True)
class FDInfinity:
    """Chong & Forsyth's bias-free FD: the intercept a of FD_n = a + b / n fitted over subset sizes n."""

    value: float
    slope: float
    sizes: tuple[int, ...]
    distances: tuple[float, ...]


FD_INF_MIN_RATIO = 4  # smallest FD-infinity subset, in multiples of the dimension


def fd_infinity(
    real: Gaussian,
    sqrt_real: np.ndarray,
    synth: np.ndarray,
    *,
    points: int = 15,
    seed: int = 0,
    min_size: int | None = None,
    min_ratio: int = FD_INF_MIN_RATIO,
) -> FDInfinity:
    """FD of seeded synthetic subsets (without replacement) against the full real statistics, extrapolated to n = ∞.

    Sizes are `points` values evenly spaced from min(5000, N/10) to N, as in the original code, but never below
    `min_ratio`·d: a Gaussian fit on fewer samples than a few times its dimension is dominated by the 1/n bias the
    fit is meant to remove, and the extrapolation over-corrects. Too few samples for that: ValueError (the reason).
    """
    n, d = synth.shape
    floor = min_ratio * d
    lo = max(2, floor, min(5000, n // 10)) if min_size is None else max(2, floor, min_size)
    if n <= lo:
        raise ValueError(
            f"FD-infinity unavailable: its smallest subset must hold at least {min_ratio}·d = {floor} samples "
            f"(d={d}) and be smaller than the set, but there are {n} synthetic samples"
        )
    sizes = np.unique(np.linspace(lo, n, points).astype(int))
    rng = np.random.default_rng(seed)
    distances = []
    for size in sizes:
        idx = np.sort(rng.choice(n, size=size, replace=False))
        distances.append(frechet_distance(real, fit_gaussian(synth[idx]), sqrt_real))
    slope, intercept = np.polyfit(1.0 / sizes, distances, 1)
    return FDInfinity(float(intercept), float(slope), tuple(int(s) for s in sizes), tuple(distances))
