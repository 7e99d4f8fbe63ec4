"""Precision, recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) in tiles.

Own code rather than the `prdc` package (kept as the test reference): prdc holds three N x N float32 distance matrices
and an N x N int64 argpartition (about 67 GB at N = 75k) and computes both self-distance matrices in full although
they are symmetric. Here:

* the k-NN radii come from the shared exact search (`chexbench_common.neighbours.knn_radii_sq`: each unordered tile
  once, half the work of a full product), whose tiles also feed KID here;
* the cross pass (is a point inside another set's ball? a per-ball radius, which no k-NN search answers) runs on the
  same centred, augmented float32 GEMM tiles ([x, -|x|²/2, 1] · [y, 1, -|y|²/2] = -D/2, at most `tile` x `tile`, so
  memory is O(N + tile²), never N x N) and keeps only the few entries near a ball's edge;
* every decision that float32 rounding could flip is re-decided from float64 distances, using the engine's rigorous
  bound on the GEMM error, so the results equal an exact float64 computation (prdc's own float32 distances aside).

Conventions as in prdc: radius = distance to the k-th nearest other point of the same set; strict `<` for "inside".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from chexbench_common.neighbours import Points, blocks, candidates, error_factor, exact_sqdist, knn_radii_sq

from .kid import KID, TiledKID
from .settings import DEFAULT_TILE


@dataclass(frozen=True)
class PRDC:
    precision: float
    recall: float
    density: float
    coverage: float
    k: int
    n_real: int
    n_synth: int

    def as_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "density": self.density, "coverage": self.coverage}


def _f32_at_most(values: np.ndarray) -> np.ndarray:
    """float32 thresholds no larger than the float64 ones (candidates are kept, never lost, by the cast)."""
    t = values.astype(np.float32)
    return np.where(t.astype(np.float64) > values, np.nextafter(t, np.float32(-np.inf)), t)


def _inside(
    t: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius_sq: np.ndarray, margin: np.ndarray, exact
) -> np.ndarray:
    """Decide D < radius² for candidate pairs: by the float32 value where the error bound allows, else exactly."""
    d32 = -2.0 * t[rows, cols].astype(np.float64)
    verdict = d32 < radius_sq - margin
    unsure = np.flatnonzero(~verdict & (d32 < radius_sq + margin))
    if len(unsure):
        verdict[unsure] = exact(unsure) < radius_sq[unsure]
    return verdict


def compute_prdc(
    real: np.ndarray,
    synth: np.ndarray,
    k: int = 5,
    *,
    tile: int = DEFAULT_TILE,
    kid: TiledKID | None = None,
    on_tile_done: Callable[[int], None] | None = None,
) -> PRDC:
    """Precision, recall, density and coverage of `synth` against `real` with k nearest neighbours; `kid` (built for
    these two sets) accumulates its kernel sums from the same tiles. `on_tile_done(1)` is called after each of the
    `pass_tiles(len(real), len(synth), tile)` distance tiles (progress)."""
    if len(real) <= k or len(synth) <= k:
        raise ValueError(
            f"precision/recall/density/coverage with k={k} need more than {k} samples per set, "
            f"got {len(real)} real and {len(synth)} synthetic"
        )
    if real.shape[1] != synth.shape[1]:
        raise ValueError(f"dimension mismatch: real d={real.shape[1]}, synthetic d={synth.shape[1]}")
    centre = (real.sum(0, dtype=np.float64) + synth.sum(0, dtype=np.float64)) / (len(real) + len(synth))
    pr, ps = Points(real, centre), Points(synth, centre)
    tick = on_tile_done or (lambda n: None)
    if kid is not None:
        kid.set_offsets("real", pr.offsets(centre))
        kid.set_offsets("synth", ps.offsets(centre))
        kid.set_shift(real.mean(0, dtype=np.float64), synth.mean(0, dtype=np.float64))

    def hook(name: str) -> Callable:
        def visit(bi, bj, t, w):
            if kid is not None:
                kid.add_tile(name, bi, name, bj, t, weight=w)
            tick(1)

        return visit

    hooks = {name: hook(name) for name in ("real", "synth")}
    r2_real = knn_radii_sq(real, k, tile=tile, points=pr, on_tile=hooks["real"])
    r2_synth = knn_radii_sq(synth, k, tile=tile, points=ps, on_tile=hooks["synth"])
    factor = error_factor(real.shape[1])
    in_precision = np.zeros(len(synth), bool)
    density_count = np.zeros(len(synth), np.int64)
    covered = np.zeros(len(real), bool)
    recalled = np.zeros(len(real), bool)
    for bj in blocks(len(real), tile):
        right = pr.right(bj)
        for bi in blocks(len(synth), tile):
            t = ps.left[bi] @ right.T  # rows: synthetic, columns: real; values -D/2
            norm_s, norm_r = ps.norm[bi], pr.norm[bj]

            # synthetic point inside a real ball: precision, density, coverage
            slack = factor * (norm_r + norm_s.max())
            r, c = candidates(t > _f32_at_most(-0.5 * (r2_real[bj] + slack))[None, :], t.shape[1])
            hit = _inside(
                t,
                r,
                c,
                r2_real[bj][c],
                factor * (norm_s[r] + norm_r[c]),
                lambda u, r=r, c=c, bi=bi, bj=bj: exact_sqdist(synth, real, r[u] + bi.start, c[u] + bj.start),
            )
            in_precision[r[hit] + bi.start] = True
            density_count[bi] += np.bincount(r[hit], minlength=bi.stop - bi.start)
            covered[c[hit] + bj.start] = True

            # real point inside a synthetic ball: recall
            slack = factor * (norm_s + norm_r.max())
            r, c = candidates(t > _f32_at_most(-0.5 * (r2_synth[bi] + slack))[:, None], t.shape[1])
            hit = _inside(
                t,
                r,
                c,
                r2_synth[bi][r],
                factor * (norm_s[r] + norm_r[c]),
                lambda u, r=r, c=c, bi=bi, bj=bj: exact_sqdist(synth, real, r[u] + bi.start, c[u] + bj.start),
            )
            recalled[c[hit] + bj.start] = True
            if kid is not None:
                kid.add_tile("synth", bi, "real", bj, t)
            tick(1)
    return PRDC(
        precision=float(in_precision.mean()),
        recall=float(recalled.mean()),
        density=float((1.0 / k) * density_count.mean()),  # the same float operations as prdc
        coverage=float(covered.mean()),
        k=k,
        n_real=len(real),
        n_synth=len(synth),
    )


def pass_tiles(n_real: int, n_synth: int, tile: int = DEFAULT_TILE) -> int:
    """How many distance tiles one compute_prdc pass visits (each set's own, once per unordered pair, then across)."""
    real, synth = len(blocks(n_real, tile)), len(blocks(n_synth, tile))
    return real * (real + 1) // 2 + synth * (synth + 1) // 2 + real * synth


def compute_prdc_kid(
    real: np.ndarray,
    synth: np.ndarray,
    k: int = 5,
    *,
    tile: int = DEFAULT_TILE,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    draws: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
    on_tile_done: Callable[[int], None] | None = None,
) -> tuple[PRDC, KID]:
    """P/R/D/C and KID in one pass over the distance tiles: KID's kernel values come from the same inner products
    (see `TiledKID`); the same subsets and values (to float32 rounding) as `kernel_inception_distance`."""
    if real.shape[1] != synth.shape[1]:
        raise ValueError(f"dimension mismatch: real d={real.shape[1]}, synthetic d={synth.shape[1]}")
    kid = TiledKID(
        len(real), len(synth), dim=real.shape[1], subsets=subsets, subset_size=subset_size, seed=seed, draws=draws
    )
    return compute_prdc(real, synth, k, tile=tile, kid=kid, on_tile_done=on_tile_done), kid.result()
