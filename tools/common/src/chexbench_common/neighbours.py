"""Exact Euclidean nearest neighbours, the one search of every stage: results equal a float64 brute force.

Two shapes, each on the engine chosen by measurement (benchmarks/neighbours_bench.py: same data, same run, 2 shared
cores, d = 768; benchmarks/results/neighbours.md):

* `nearest(query, base, k)` — faiss's exact flat search (`faiss.knn`, the `IndexFlatL2` kernel) proposes k + SLACK
  candidates. On 4k queries x 60k base the whole search (faiss plus the exactness below) took the time of our former
  tiled float32 GEMM search (ours / this: 0.80, 0.98 and 1.34 in three runs, within the machine's noise) and 1.8-2.4x
  less than scikit-learn's brute force. Ours is not measurably faster, so the well-kept library is used: less code of
  ours, and a GPU build for 75k x 370k.
* `knn_radii_sq(x, k)` — the distance of each point to its k-th nearest other point of its own set (k-NN radii): our
  tiled float32 GEMMs, which visit each unordered pair of tiles once, half the products of any query-to-base search,
  faiss's included. Measured faster: faiss (the `nearest(x, x, k + 1)` route) took 1.33-1.63x as long on 20k points,
  scikit-learn 2.2-2.4x. Its tiles are handed to the caller (fidelity fuses KID into them and tests ball membership on
  the same `Points`).

Exactness. float32 distances mis-order near ties and lose digits (|x|² + |y|² - 2xᵀy cancels when the points are far
from the origin). So both shapes centre the data (distances do not depend on the centre), rank candidates in float32,
re-compute every candidate's squared distance from float64 differences (`exact_sqdist`) and prove with a rigorous
bound on the float32 error (`error_factor`) that no point outside the candidates can be nearer; rows where the proof
fails (ties at the edge of the candidates, planted copies) are searched again over the whole base by a float64
expansion with its own bound, then exact differences. Ties at equal exact distance go to the lower base index.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

U32 = 2.0**-24
U64 = 2.0**-53
SLACK = 8  # nearest(): float32 candidates kept per query beyond k, so ties at the k-th rarely need the exact fallback
RADII_SLACK = 3  # knn_radii_sq: neighbours kept per row beyond k + 1 (each kept one costs merge work in every tile)
PAIR_CHUNK_BYTES = 1 << 22  # float64 pair differences per chunk: stays in cache
FALLBACK_BYTES = 1 << 26  # float64 distances of one block of fallback rows against the whole base


def error_factor(d: int, unit: float = U32) -> float:
    """C such that |D̂ - D| <= C (|x|² + |y|²) for a squared distance D̂ of centred d-dimensional points x, y computed
    with unit roundoff `unit`, by either route the engine takes:

    * faiss: |x̃|² + |ỹ|² - 2 x̃ᵀỹ (norms and inner product each a d-term sum; negative results clamped at 0, which only
      moves them toward D), or its direct Σ(x̃ᵢ - ỹᵢ)² for small batches (error below this one);
    * the augmented GEMM [x̃, -|x̃|²/2, 1] · [ỹ, 1, -|ỹ|²/2] = -D/2 of `Points` (d + 2 terms);
    * the float64 expansion of the exact fallback (unit = U64).

    Every sum of n products errs by at most γ_n Σ|terms| (γ_n = nu / (1 - nu), any summation order, FMA or not) with
    Σ|terms| <= |x|² + |y|²: 2γ_{d+2} for the sums, 3u for faiss's two final additions (u for the GEMM's rounded
    -|x|²/2 entries), 4u for the centred vectors rounded to the working precision (|D(x̃, ỹ) - D(x, y)| <=
    2|x - y||e| + |e|² with |e| <= u(|x| + |y|)); times 1.25 for the second-order terms and the float64 rounding of the
    exact re-computation.
    """
    gamma = (d + 2) * unit / (1 - (d + 2) * unit)
    return 1.25 * (2 * gamma + 7 * unit)


def exact_sqdist(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Squared distances |a[rows] - b[cols]|² from differences in float64 (exact up to float64 rounding)."""
    out = np.empty(len(rows))
    step = max(1, PAIR_CHUNK_BYTES // (8 * a.shape[1]))
    for s in range(0, len(rows), step):
        diff = a[rows[s : s + step]].astype(np.float64) - b[cols[s : s + step]]
        out[s : s + step] = np.einsum("ij,ij->i", diff, diff)
    return out


def check_inputs(query: np.ndarray, base: np.ndarray, k: int) -> None:
    """Refuse what no search can answer: not 2-D, dimensions that differ, k outside [1, len(base)], NaN or inf."""
    if query.ndim != 2 or base.ndim != 2:
        raise ValueError(f"expected 2-D arrays, got shapes {query.shape} and {base.shape}")
    if query.shape[1] != base.shape[1]:
        raise ValueError(f"dimension mismatch: queries are {query.shape[1]}-d, the base is {base.shape[1]}-d")
    if not 1 <= k <= len(base):
        raise ValueError(f"k={k} must be between 1 and the base size {len(base)}")
    for name, array in (("queries", query), ("base", base)):
        if not np.isfinite(array).all():
            raise ValueError(f"the {name} contain NaN or infinite values")


def _centred32(x: np.ndarray, centre: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """x minus the float32-rounded centre, rounded once to float32 (C-contiguous), and the squared norms of those
    rows (float64). Distances do not depend on which centre is subtracted, so its rounding costs nothing."""
    out = np.empty(x.shape, np.float32)
    norm = np.empty(len(x))
    shift = centre.astype(np.float32)
    for s in range(0, len(x), chunk):
        np.subtract(x[s : s + chunk], shift, out=out[s : s + chunk], casting="same_kind")
        norm[s : s + chunk] = np.einsum("ij,ij->i", out[s : s + chunk], out[s : s + chunk], dtype=np.float64)
    return out, norm


def _stable_order(distance: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per row: ascending distance, ties broken by the lower base index."""
    by_index = np.argsort(index, axis=1, kind="stable")
    by_distance = np.argsort(np.take_along_axis(distance, by_index, axis=1), axis=1, kind="stable")
    return np.take_along_axis(by_index, by_distance, axis=1)


def nearest(
    query: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    batch: int = 4096,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances (float64, ascending) and indices (int64) of each query's k nearest base rows, equal to a
    float64 brute force (ties to the lower index). Queries go `batch` at a time; `on_batch(rows)` after each."""
    query, base = np.asarray(query), np.asarray(base)
    check_inputs(query, base, k)
    import faiss  # only the stages that search load it

    centre = base.mean(axis=0, dtype=np.float64)
    base32, base_norm = _centred32(base, centre)
    width = min(len(base), k + SLACK)
    factor = error_factor(base.shape[1])
    dist = np.empty((len(query), k))
    index = np.empty((len(query), k), dtype=np.int64)
    for s in range(0, len(query), batch):
        q = query[s : s + batch]
        q32, q_norm = _centred32(q, centre)
        d32, cand = faiss.knn(q32, base32, width)
        exact = exact_sqdist(q, base, np.repeat(np.arange(len(q)), width), cand.ravel()).reshape(cand.shape)
        order = _stable_order(exact, cand)[:, :k]
        best, ids = np.take_along_axis(exact, order, axis=1), np.take_along_axis(cand, order, axis=1)
        d32 = d32.astype(np.float64)
        # the bound held on every candidate (a guard against a reduced-precision build) ...
        sure = (np.abs(d32 - exact) <= factor * (q_norm[:, None] + base_norm[cand])).all(axis=1)
        if width < len(base):
            # ... and every point left out (float32 distance >= the last kept one) is surely farther than the k-th
            sure &= d32[:, -1] - factor * (q_norm + base_norm.max()) > best[:, -1]
        unsure = np.flatnonzero(~sure)
        if len(unsure):
            best[unsure], ids[unsure] = exact_nearest_sq(q[unsure], base, k, centre)
        dist[s : s + batch], index[s : s + batch] = np.sqrt(best), ids
        if on_batch is not None:
            on_batch(len(q))
    return dist, index


def exact_nearest_sq(
    query: np.ndarray, base: np.ndarray, k: int, centre: np.ndarray, chunk: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances and indices of the k nearest base rows of a few queries, searched over the whole base in
    float64: a centred expansion ranks, its error bound keeps every row that could be among the k nearest, and those
    are decided by exact differences (ties to the lower index)."""
    d = base.shape[1]
    base_norm = np.concatenate(
        [
            np.einsum("ij,ij->i", c, c)
            for c in (base[s : s + chunk].astype(np.float64) - centre for s in range(0, len(base), chunk))
        ]
    )
    factor = 2 * error_factor(d, U64)  # the expansion's error and that of the exact re-computation
    best = np.empty((len(query), k))
    ids = np.empty((len(query), k), dtype=np.int64)
    step = max(1, FALLBACK_BYTES // (8 * len(base)))
    for r in range(0, len(query), step):
        q = query[r : r + step].astype(np.float64) - centre
        q_norm = np.einsum("ij,ij->i", q, q)
        approx = np.empty((len(q), len(base)))
        for s in range(0, len(base), chunk):
            c = base[s : s + chunk].astype(np.float64) - centre
            approx[:, s : s + chunk] = q_norm[:, None] + base_norm[None, s : s + chunk] - 2.0 * (q @ c.T)
        kth = np.partition(approx, k - 1, axis=1)[:, k - 1]
        reach = kth + 2 * factor * (q_norm + base_norm.max())
        rows, cols = np.nonzero(approx <= reach[:, None])  # at least k per row: the k smallest approximations
        exact = exact_sqdist(query, base, rows + r, cols)
        order = np.lexsort((cols, exact, rows))
        rows, cols, exact = rows[order], cols[order], exact[order]
        start = np.searchsorted(rows, np.arange(len(q)))
        rank = np.arange(len(rows)) - start[rows]
        keep = rank < k
        best[r : r + len(q)] = exact[keep].reshape(len(q), k)
        ids[r : r + len(q)] = cols[keep].reshape(len(q), k)
    return best, ids


# ---------------------------------------------------------------------------------------------- k-NN radii in tiles


class Points:
    """One point set, centred and augmented for tiled distance GEMMs: a tile `left[I] @ right(J).T` holds -D/2."""

    def __init__(self, x: np.ndarray, centre: np.ndarray, chunk: int = 8192):
        self.raw = x
        n, d = x.shape
        self.left = np.empty((n, d + 2), np.float32)
        self.norm = np.empty(n)
        for s in range(0, n, chunk):
            c = (x[s : s + chunk].astype(np.float64) - centre).astype(np.float32)
            self.norm[s : s + chunk] = np.einsum("ij,ij->i", c, c, dtype=np.float64)
            self.left[s : s + chunk, :d] = c
        self.left[:, d] = -0.5 * self.norm
        self.left[:, d + 1] = 1.0

    def offsets(self, centre: np.ndarray) -> np.ndarray:
        """h with xᵀy = t + h_x + h_y for the tile values t of `left` · `right` (= |x|²/2 in exact arithmetic),
        from the float32 vectors and the float32 -|x̃|²/2 entries the GEMM actually uses."""
        d = self.left.shape[1] - 2
        step = max(1, (1 << 20) // d)
        dots = np.concatenate([self.left[s : s + step, :d] @ centre for s in range(0, len(self.left), step)])
        return -self.left[:, d].astype(np.float64) + dots + 0.5 * float(centre @ centre)

    def __len__(self) -> int:
        return len(self.raw)

    def right(self, rows: slice) -> np.ndarray:
        """[x̃, 1, -|x̃|²/2] for `rows`, contiguous, as the right-hand side of a tile GEMM."""
        d = self.left.shape[1] - 2
        out = np.empty((rows.stop - rows.start, d + 2), np.float32)
        out[:, :d] = self.left[rows, :d]
        out[:, d] = 1.0
        out[:, d + 1] = self.left[rows, d]
        return out


def blocks(n: int, tile: int) -> list[slice]:
    """At most `tile` rows per block, the blocks as even as possible."""
    count = max(1, -(-n // tile))
    edges = np.linspace(0, n, count + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def candidates(mask: np.ndarray, tile_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every True entry of a tile mask."""
    flat = np.flatnonzero(mask)  # 1-D flatnonzero is ~20x faster than 2-D nonzero
    return flat // tile_cols, flat % tile_cols


class _TopL:
    """Per row, the L largest tile values (= smallest distances) seen so far, with their column indices."""

    def __init__(self, n: int, width: int):
        self.vals = np.full((n, width), -np.inf, np.float32)
        self.idx = np.full((n, width), -1, np.int64)

    def threshold(self, rows: slice) -> np.ndarray:
        return self.vals[rows].min(axis=1)

    def seed(self, rows: slice, tile: np.ndarray) -> None:
        width = min(self.vals.shape[1], tile.shape[1])
        top = np.argpartition(tile, tile.shape[1] - width, axis=1)[:, tile.shape[1] - width :]
        self.vals[rows, :width] = np.take_along_axis(tile, top, axis=1)
        self.idx[rows, :width] = top + rows.start

    def merge(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        """Merge candidate (row, col, value) triples into the kept sets of their rows."""
        if not len(rows):
            return
        width = self.vals.shape[1]
        urows = np.unique(rows)
        all_r = np.concatenate([np.repeat(urows, width), rows])
        all_v = np.concatenate([self.vals[urows].ravel(), vals])
        all_i = np.concatenate([self.idx[urows].ravel(), cols])
        order = np.lexsort((-all_v, all_r))
        r = all_r[order]
        start = np.searchsorted(r, urows)
        rank = np.arange(len(r)) - np.repeat(start, np.diff(np.append(start, len(r))))
        keep = rank < width
        self.vals[r[keep], rank[keep]] = all_v[order][keep]
        self.idx[r[keep], rank[keep]] = all_i[order][keep]


def knn_radii_sq(
    x: np.ndarray,
    k: int,
    *,
    tile: int = 2048,
    points: Points | None = None,
    on_tile: Callable[[slice, slice, np.ndarray, float], None] | None = None,
) -> np.ndarray:
    """Exact squared distance of each row to its k-th nearest other row (float64), in tiles: the (k+1)-th smallest of
    its distances to every row, itself included (so a duplicate gives 0).

    `on_tile(rows, cols, t, weight)` sees every tile t = -D/2 visited: the diagonal ones (weight 1) and each unordered
    off-diagonal one once (weight 2, it stands for its mirror too)."""
    n = len(x)
    if n <= k:
        raise ValueError(f"k-NN radii with k={k} need more than {k} points, got {n}")
    pts = points if points is not None else Points(x, x.mean(0, dtype=np.float64))
    width = min(n, k + 1 + RADII_SLACK)
    top = _TopL(n, width)
    parts = blocks(n, tile)
    for b in parts:  # diagonal tiles seed every row's threshold
        t = pts.left[b] @ pts.right(b).T
        if on_tile is not None:
            on_tile(b, b, t, 1.0)
        top.seed(b, t)
    for j, bj in enumerate(parts):  # each unordered off-diagonal tile once, used for its rows and its columns
        right = pts.right(bj)
        for bi in parts[:j]:
            t = pts.left[bi] @ right.T
            if on_tile is not None:
                on_tile(bi, bj, t, 2.0)
            r, c = candidates(t > top.threshold(bi)[:, None], t.shape[1])
            rt, ct = candidates(t > top.threshold(bj)[None, :], t.shape[1])
            top.merge(r + bi.start, c + bj.start, t[r, c])
            top.merge(ct + bj.start, rt + bi.start, t[rt, ct])
    margin = error_factor(x.shape[1]) * (pts.norm + pts.norm.max())
    radii = _exact_kth(x, top, k, margin)
    if width < n:
        # every row outside the kept set has float32 distance >= kept_max, so exact distance >= kept_max - margin
        kept_max = -2.0 * top.vals.min(axis=1).astype(np.float64)
        unsure = np.flatnonzero(~(radii <= kept_max - margin))
        if len(unsure):
            radii[unsure] = exact_nearest_sq(x[unsure], x, k + 1, x.mean(0, dtype=np.float64))[0][:, k]
    return radii


def _exact_kth(x: np.ndarray, top: _TopL, k: int, margin: np.ndarray) -> np.ndarray:
    """The exact k-th neighbour distance of each row from its kept candidates, computing few exact distances.

    With the kept float32 distances sorted, positions before a gap wider than 2·margin below position k are surely the
    smallest, and positions more than 2·margin above position k surely larger: only the window between is computed.
    """
    n, width = top.vals.shape
    order = np.argsort(-top.vals, axis=1)
    d32 = -2.0 * np.take_along_axis(top.vals, order, axis=1).astype(np.float64)
    idx = np.take_along_axis(top.idx, order, axis=1)
    gap = np.diff(d32, axis=1) > 2 * margin[:, None]  # gap[:, p - 1]: between positions p - 1 and p
    pos = np.arange(1, width)
    first = np.where(gap & (pos <= k), pos, 0).max(axis=1)
    above = (d32 - d32[:, k : k + 1] > 2 * margin[:, None]) | (idx < 0)
    stop = np.where(above.any(axis=1), above.argmax(axis=1), width)
    window = (np.arange(width) >= first[:, None]) & (np.arange(width) < stop[:, None])
    rows, cols = np.nonzero(window)
    exact = np.full((n, width), np.inf)
    exact[rows, cols] = exact_sqdist(x, x, rows, idx[rows, cols])
    exact.sort(axis=1)
    return exact[np.arange(n), k - first]
