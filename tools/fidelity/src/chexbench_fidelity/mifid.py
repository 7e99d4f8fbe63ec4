"""MiFID (Bai et al. 2021, the Kaggle "memorization-informed FID"), as torchmetrics computes it: FID divided by the
mean, over the reference rows, of the minimal cosine distance 1 − |cos| to any synthetic row, when that mean is below
ε (0.1); otherwise FID unchanged. Rows whose features sum to 0 are left out of the distance, as in torchmetrics.

The minimal distances come from tiled float32 GEMMs (no N × N matrix) keeping each reference row's `top` most similar
synthetic rows, whose similarities are then recomputed in float64; the kept candidates also give the minimum of a
bootstrap draw (the nearest candidate that is in the draw) without another pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 0.1  # torchmetrics' cosine_distance_eps default
TINY = 10e-15  # torchmetrics adds it to the distance before dividing
TOP = 16


@dataclass(frozen=True)
class Nearest:
    """Per kept reference row: its candidates' synthetic indices and exact cosine distances, nearest first."""

    reference: np.ndarray  # the kept rows (features not summing to 0), as given
    synth: np.ndarray
    kept_reference: np.ndarray  # their indices in the inputs
    kept_synth: np.ndarray
    index: np.ndarray  # (n_kept_reference, top) into the kept synthetic rows
    distance: np.ndarray  # (n_kept_reference, top) float64

    def mean_distance(self, w_reference: np.ndarray | None = None, w_synth: np.ndarray | None = None) -> float:
        """Mean minimal distance, for a bootstrap draw's multiplicities when given."""
        if w_reference is None:
            return float(self.distance[:, 0].mean())
        wr = w_reference[self.kept_reference].astype(np.float64)
        present = np.flatnonzero(w_synth[self.kept_synth] > 0)
        in_draw = np.zeros(len(self.kept_synth), bool)
        in_draw[present] = True
        rows = np.flatnonzero(wr > 0)
        best = np.where(in_draw[self.index[rows]], self.distance[rows], np.inf).min(axis=1)
        for at in np.flatnonzero(~np.isfinite(best)):  # no candidate drawn: the exact minimum over the drawn rows
            best[at] = _cosine_distances(self.reference[rows[at]][None], self.synth[present]).min()
        return float(np.dot(wr[rows], best) / wr[rows].sum())


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 − |cos| between the rows of a (n, d) and b (m, d), float64."""
    return 1.0 - np.abs(_unit(a) @ _unit(b).T)


def nearest_cosine(reference: np.ndarray, synth: np.ndarray, *, top: int = TOP, tile: int = 2048) -> Nearest:
    """Each reference row's `top` nearest synthetic rows by cosine distance 1 − |cos| (float32 GEMM tiles, the kept
    candidates re-scored in float64)."""
    kept_r = np.flatnonzero(np.asarray(reference, np.float64).sum(axis=1) != 0)
    kept_s = np.flatnonzero(np.asarray(synth, np.float64).sum(axis=1) != 0)
    if len(kept_r) == 0 or len(kept_s) == 0:
        raise ValueError("MiFID needs reference and synthetic rows whose features do not sum to 0")
    reference, synth = reference[kept_r], synth[kept_s]
    s32 = _unit(synth).astype(np.float32)
    top = min(top, len(kept_s))
    index = np.empty((len(kept_r), top), np.int64)
    distance = np.empty((len(kept_r), top))
    for start in range(0, len(kept_r), tile):
        block = reference[start : start + tile]
        sims = np.abs(_unit(block).astype(np.float32) @ s32.T)
        part = np.argpartition(-sims, top - 1, axis=1)[:, :top] if top < sims.shape[1] else np.argsort(-sims, axis=1)
        exact = 1.0 - np.abs(np.einsum("id,ikd->ik", _unit(block), _unit(synth[part])))
        order = np.argsort(exact, axis=1, kind="stable")
        index[start : start + tile] = np.take_along_axis(part, order, 1)
        distance[start : start + tile] = np.take_along_axis(exact, order, 1)
    return Nearest(reference, synth, kept_r, kept_s, index, distance)


def mifid(fid: float, mean_distance: float, eps: float = EPS) -> float:
    """torchmetrics' rule: FID / (d̄ + 1e-14) when d̄ < ε (else d̄ counts as 1); 0 when FID ≤ 1e-8."""
    penalty = mean_distance if mean_distance < eps else 1.0
    return fid / (penalty + TINY) if fid > 1e-8 else 0.0
