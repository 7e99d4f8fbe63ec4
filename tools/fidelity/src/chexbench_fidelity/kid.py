"""Kernel Inception Distance: unbiased polynomial-kernel MMD² averaged over seeded random subsets.

Same estimator as torchmetrics / torch-fidelity (k(x, y) = (γ xᵀy + c)^degree, γ = 1/d), but the subset size is
min(subset_size, N_real, N_synth) instead of an error, the subsets come from a seeded generator, and kernel sums are
accumulated in float64 (the Gram products themselves are float32 GEMMs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KID:
    """Mean and population std (ddof 0, as torchmetrics and torch-fidelity) of the per-subset MMD² values."""

    mean: float
    std: float
    subset_size: int
    values: np.ndarray


def _polynomial(g: np.ndarray, gamma: float, coef: float, degree: int) -> np.ndarray:
    """(γ g + c)^degree of Gram products g, in g's dtype, overwriting g."""
    g *= gamma
    g += coef
    p = g * g if degree >= 2 else g  # repeated products: np.power(g, 3) is a libm pow call per element, ~4x slower
    for _ in range(degree - 2):
        p *= g
    return p


def _kernel_sum(x: np.ndarray, y: np.ndarray | None, gamma: float, coef: float, degree: int) -> tuple[float, float]:
    """(sum of all kernel values, sum of the diagonal) of k(x, y); y=None means k(x, x)."""
    p = _polynomial(x @ x.T if y is None else x @ y.T, gamma, coef, degree)
    return float(p.sum(dtype=np.float64)), float(np.trace(p, dtype=np.float64))


def kernel_matrix(
    x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> np.ndarray:
    """k(x_i, y_j) for every pair, float64 (the Gram product a float32 GEMM, as in the kernel sums)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    g = np.asarray(x, np.float32) @ np.asarray(y, np.float32).T
    return _polynomial(g.astype(np.float64), gamma, coef, degree)


def _self_offdiagonal_sum(x: np.ndarray, gamma: float, coef: float, degree: int) -> float:
    """Sum of k(x_i, x_j) over i != j. Own blocking rather than one x @ x.T: the Gram matrix is symmetric, so with
    x = [a; b] three half-size products (aaᵀ, bbᵀ and abᵀ counted twice) replace four (BLAS syrk is no faster)."""
    h = len(x) // 2
    if h < 64:
        total, diag = _kernel_sum(x, None, gamma, coef, degree)
        return total - diag
    a, b = x[:h], x[h:]
    aa, aa_diag = _kernel_sum(a, None, gamma, coef, degree)
    bb, bb_diag = _kernel_sum(b, None, gamma, coef, degree)
    ab, _ = _kernel_sum(a, b, gamma, coef, degree)
    return aa - aa_diag + bb - bb_diag + 2.0 * ab


def mmd2_unbiased(
    x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> float:
    """Unbiased MMD² between two equal-size samples under the polynomial kernel."""
    m = len(x)
    if m < 2 or len(y) != m:
        raise ValueError(f"unbiased MMD² needs two samples of equal size >= 2, got {len(x)} and {len(y)}")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    xx = _self_offdiagonal_sum(x, gamma, coef, degree)
    yy = _self_offdiagonal_sum(y, gamma, coef, degree)
    xy, _ = _kernel_sum(x, y, gamma, coef, degree)
    return (xx + yy) / (m * (m - 1)) - 2.0 * xy / (m * m)


def subset_draws(n_real: int, n_synth: int, subsets: int, size: int, seed: int) -> Iterable[tuple[np.ndarray, ...]]:
    """Seeded index pairs, each a sample without replacement of `size` rows from each set."""
    rng = np.random.default_rng(seed)
    for _ in range(subsets):
        yield rng.choice(n_real, size, replace=False), rng.choice(n_synth, size, replace=False)


def _subset_size(n_real: int, n_synth: int, subset_size: int) -> int:
    m = min(subset_size, n_real, n_synth)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {n_real} real and {n_synth} synthetic")
    return m


def _kid(values, m: int) -> KID:
    values = np.asarray(values, dtype=np.float64)
    return KID(float(values.mean()), float(values.std()), m, values)


def kernel_inception_distance(
    real: np.ndarray,
    synth: np.ndarray,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int = 0,
    draws: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
) -> KID:
    """KID over `subsets` subsets of min(subset_size, N_real, N_synth); `draws` overrides the subset indices."""
    m = _subset_size(len(real), len(synth), subset_size)
    if draws is None:
        draws = subset_draws(len(real), len(synth), subsets, m, seed)
    values = []
    for idx_real, idx_synth in draws:
        values.append(
            mmd2_unbiased(
                np.asarray(real[idx_real], dtype=np.float32),
                np.asarray(synth[idx_synth], dtype=np.float32),
                degree=degree,
                gamma=gamma,
                coef=coef,
            )
        )
    return _kid(values, m)


CHUNK_ELEMENTS = 1 << 15  # float32 elements per row chunk of a tile in the kernel passes (128 KB)


class TiledKID:
    """KID accumulated from the inner-product tiles of another all-pairs pass (the P/R/D/C tiles of manifold.py).

    The kernel is a function of xᵀy, and the P/R/D/C pass computes every pair's inner product anyway (as tiles
    t = xᵀy - h_x - h_y, h = a per-point offset). With the subsets as 0/1 membership matrices M (subsets x N; subsets
    are drawn without replacement, so no multiplicities), the kernel sum of subset s over a tile (rows I, columns J) is
    rowsum((M_I K_IJ) * M_J): about subsets·|I|·|J| extra multiply-adds per tile instead of the subsets·3·m²·d of
    the standalone estimator. The self-kernel diagonals are summed from the same kernel values and subtracted, and
    the unbiased MMD² is finished per subset exactly as `mmd2_unbiased` does. Same subsets (same seed or `draws`) as
    `kernel_inception_distance`, equal to it up to float32 rounding of the kernel values: the kernel is evaluated
    from t in float32 (like the standalone Gram products) and a typical kernel value is subtracted before the
    float32 subset sums (see `set_shift`); the per-subset totals are accumulated in float64. Memory: two
    subsets x N float32 membership matrices and one tile of kernel values.
    """

    def __init__(
        self,
        n_real: int,
        n_synth: int,
        *,
        dim: int,
        subsets: int = 100,
        subset_size: int = 1000,
        degree: int = 3,
        gamma: float | None = None,
        coef: float = 1.0,
        seed: int = 0,
        draws: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
    ):
        if draws is None:
            m = _subset_size(n_real, n_synth, subset_size)
            draws = subset_draws(n_real, n_synth, subsets, m, seed)
        draws = list(draws)
        self.member = {
            "real": _membership(n_real, [np.asarray(r) for r, _ in draws]),
            "synth": _membership(n_synth, [np.asarray(s) for _, s in draws]),
        }
        sizes = {int(c) for mm in self.member.values() for c in mm.sum(1)}
        if len(sizes) != 1 or sizes.pop() < 2:
            raise ValueError("KID subsets must all have one size >= 2 in both sets")
        self.m = int(self.member["real"][0].sum())
        self.degree, self.gamma, self.coef = degree, 1.0 / dim if gamma is None else gamma, coef
        self.offset: dict[str, np.ndarray] = {}
        self.shift = np.float32(0.0)
        self._kernel = np.empty(0, np.float32)
        self.sums = {key: np.zeros(len(draws)) for key in ("real", "synth", "cross", "real_diag", "synth_diag")}

    def set_offsets(self, which: str, h: np.ndarray) -> None:
        """Per-point offsets of set `which` ("real" or "synth"): xᵀy = t + h_x + h_y for every tile value t."""
        self.offset[which] = (np.asarray(h, dtype=np.float64) + 0.5 * self.coef / self.gamma).astype(np.float32)

    def set_shift(self, mean_real: np.ndarray, mean_synth: np.ndarray) -> None:
        """Subtract one constant κ ≈ a typical kernel value, k(mean_real, mean_synth), from every kernel value before
        the float32 subset sums: the unbiased MMD² does not change (κ·m(m-1) leaves each self sum over the m(m-1)
        off-diagonal pairs, κ·m² the cross sum over m² pairs), but the sums no longer carry the large common part
        that the estimator cancels, so float32 accumulation loses nothing that matters."""
        inner = float(np.dot(np.asarray(mean_real, np.float64), np.asarray(mean_synth, np.float64)))
        self.shift = np.float32((inner + self.coef / self.gamma) ** self.degree)  # in units of γ^-degree

    def add_tile(self, rows: str, bi: slice, cols: str, bj: slice, t: np.ndarray, *, weight: float = 1.0) -> None:
        """Kernel sums of one tile: rows `bi` of set `rows`, columns `bj` of set `cols` (a real-real or synth-synth
        tile off the diagonal stands for its mirror too: weight 2). A diagonal self tile (rows == cols, bi == bj)
        also adds its diagonal to the sums subtracted at the end."""
        n_i, n_j = t.shape
        if self._kernel.size < t.size:
            self._kernel = np.empty(t.size, np.float32)
        kernel = self._kernel[: t.size].reshape(n_i, n_j)
        a, b = self.offset[rows][bi, None], self.offset[cols][None, bj]
        step = max(1, CHUNK_ELEMENTS // n_j)  # row chunks: the element-wise passes stay in cache
        g = np.empty((min(step, n_i), n_j), np.float32)
        for s in range(0, n_i, step):  # (γ·xᵀy + c)^degree = γ^degree (t + a_i + b_j)^degree, a = h + c/(2γ)
            part, gs = kernel[s : s + step], g[: min(step, n_i - s)]
            np.add(t[s : s + step], a[s : s + step], out=gs)
            gs += b
            if self.degree >= 2:
                np.multiply(gs, gs, out=part)
            else:
                np.copyto(part, gs)
            for _ in range(self.degree - 2):
                part *= gs
            part -= self.shift
        per_subset = self.member[rows][:, bi] @ kernel
        key = rows if rows == cols else "cross"
        self.sums[key] += weight * np.einsum("sj,sj->s", per_subset, self.member[cols][:, bj], dtype=np.float64)
        if rows == cols and bi == bj:
            self.sums[rows + "_diag"] += self.member[rows][:, bi] @ np.diagonal(kernel).astype(np.float64)

    def result(self) -> KID:
        m = self.m
        xx = self.sums["real"] - self.sums["real_diag"]
        yy = self.sums["synth"] - self.sums["synth_diag"]
        values = self.gamma**self.degree * ((xx + yy) / (m * (m - 1)) - 2.0 * self.sums["cross"] / (m * m))
        return _kid(values, m)


def _membership(n: int, subsets: list[np.ndarray]) -> np.ndarray:
    """0/1 float32 matrix (subsets x n) of the index subsets; refuses repeated indices."""
    out = np.zeros((len(subsets), n), np.float32)
    for s, idx in enumerate(subsets):
        if len(np.unique(idx)) != len(idx):
            raise ValueError("KID subsets must be drawn without replacement")
        out[s, idx] = 1.0
    return out
