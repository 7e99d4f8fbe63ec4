"""Exact k-nearest-neighbour search by tiled matrix products.

Hand-written rather than scikit-learn's NearestNeighbors/faiss: sklearn's brute force materialises float64 distance
chunks (benchmarks/privacy_bench.py measures both), and faiss-cpu is not in our stack.
Squared distances come from one float32 GEMM per tile (|q|^2 + |b|^2 - 2 q.b); a margin of extra candidates is kept
so that the float64 re-rank of the survivors is exact.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MARGIN = 8  # extra candidates per query kept through the float32 pass, re-ranked exactly in float64


def _check(query: np.ndarray, base: np.ndarray, k: int) -> None:
    if query.ndim != 2 or base.ndim != 2:
        raise ValueError(f"expected 2-D arrays, got shapes {query.shape} and {base.shape}")
    if query.shape[1] != base.shape[1]:
        raise ValueError(f"dimension mismatch: queries are {query.shape[1]}-d, the base is {base.shape[1]}-d")
    if not 1 <= k <= len(base):
        raise ValueError(f"k={k} must be between 1 and the base size {len(base)}")
    for name, array in (("queries", query), ("base", base)):
        if not np.isfinite(array).all():
            raise ValueError(f"the {name} contain NaN or infinite values")


def exact_topk(
    query: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    tile: int = 4096,
    on_tile: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances (float64, ascending) and indices (int64) of each query's k nearest base rows."""
    query, base = np.asarray(query), np.asarray(base)
    _check(query, base, k)
    keep = min(len(base), k + MARGIN)
    q32, b32 = query.astype(np.float32, copy=False), base.astype(np.float32, copy=False)
    b_norm = np.einsum("ij,ij->i", b32, b32)
    total = -(-len(query) // tile) * -(-len(base) // tile)
    done = 0
    dist = np.empty((len(query), k))
    index = np.empty((len(query), k), dtype=np.int64)
    for qs in range(0, len(query), tile):
        q = q32[qs : qs + tile]
        q_norm = np.einsum("ij,ij->i", q, q)[:, None]
        best_d = np.empty((len(q), 0), dtype=np.float32)
        best_i = np.empty((len(q), 0), dtype=np.int64)
        for bs in range(0, len(base), tile):
            sq = q @ b32[bs : bs + tile].T
            sq *= -2
            sq += q_norm
            sq += b_norm[bs : bs + tile]
            tile_d, tile_i = _smallest(sq, keep)
            best_d, best_i = _smallest(
                np.concatenate([best_d, tile_d], axis=1), keep, np.concatenate([best_i, tile_i + bs], axis=1)
            )
            done += 1
            if on_tile is not None:
                on_tile(done, total)
        exact = _rerank(query[qs : qs + tile], base, best_i)
        order = _stable_order(exact, best_i)[:, :k]
        dist[qs : qs + tile] = np.take_along_axis(exact, order, axis=1)
        index[qs : qs + tile] = np.take_along_axis(best_i, order, axis=1)
    return dist, index


def _smallest(values: np.ndarray, keep: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The `keep` smallest entries of each row (unordered) and their ids (column numbers when ids is None)."""
    if values.shape[1] > keep:
        part = np.argpartition(values, keep - 1, axis=1)[:, :keep]
    else:
        part = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    chosen = np.take_along_axis(values, part, axis=1)
    return chosen, (part.astype(np.int64) if ids is None else np.take_along_axis(ids, part, axis=1))


def _rerank(query: np.ndarray, base: np.ndarray, candidates: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Exact float64 Euclidean distances of each query to its candidate base rows (chunked to bound memory)."""
    out = np.empty(candidates.shape)
    for s in range(0, len(query), chunk):
        diff = base[candidates[s : s + chunk]].astype(np.float64) - query[s : s + chunk, None, :].astype(np.float64)
        out[s : s + chunk] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    return out


def _stable_order(distance: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per row: ascending distance, ties broken by the lower base index (deterministic across tilings)."""
    by_index = np.argsort(index, axis=1, kind="stable")
    by_distance = np.argsort(np.take_along_axis(distance, by_index, axis=1), axis=1, kind="stable")
    return np.take_along_axis(by_index, by_distance, axis=1)
