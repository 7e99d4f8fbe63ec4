"""The C_T data-copying test (Meehan, Chaudhuri & Dasgupta 2020, "A non-parametric test to detect data-copying in
generative models").

The training set T is split into cells by k-means (k-means++ seeding, one initialisation, seeded); every held-out
real image (P) and synthetic image (Q) falls into the cell of its nearest centroid. In each cell, L(x) is the
distance from x to its nearest training image of that cell, and the Mann–Whitney U statistic of L(Q) against L(P)
becomes a z-score, Z_U = (U − m·n/2) / √(m·n·(m + n + 1)/12) (m, n: the cell's synthetic and held-out counts; U
counts pairs with L(q) > L(p), ties ½). C_T is the average of the cells' Z_U weighted by the held-out share of each
cell, over the cells with at least `min_synth` synthetic images (the paper's τ) and one held-out image. C_T ≪ 0
(below −3 in the paper): synthetic images sit closer to the training images than fresh real images do — data
copying; C_T ≫ 0: they are farther (underfitting); ≈ 0: neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from chexbench_common.neighbours import nearest
from scipy.stats import mannwhitneyu

MIN_SYNTH = 20  # τ: cells with fewer synthetic images are left out (their z-score is too noisy)
MAX_CELLS = 50
PER_CELL = 50  # default cells: about this many held-out or synthetic images per cell, at most MAX_CELLS


@dataclass(frozen=True)
class DataCopying:
    statistic: float  # C_T
    cells: int  # k of the k-means
    used: np.ndarray  # indices of the cells that count
    z: np.ndarray  # Z_U of each used cell
    weights: np.ndarray  # held-out share of each used cell (normalised over the used cells)


def default_cells(n_test: int, n_synth: int) -> int:
    return int(np.clip(min(n_test, n_synth) // PER_CELL, 1, MAX_CELLS))


def mann_whitney_z(synth_distances: np.ndarray, test_distances: np.ndarray) -> float:
    """Z_U of L(Q) against L(P), without tie correction (as in the paper)."""
    m, n = len(synth_distances), len(test_distances)
    u = mannwhitneyu(synth_distances, test_distances, alternative="two-sided").statistic
    return float((u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0))


def data_copying_test(
    train: np.ndarray,
    test: np.ndarray,
    synth: np.ndarray,
    *,
    cells: int | None = None,
    min_synth: int = MIN_SYNTH,
    seed: int = 0,
) -> DataCopying:
    """C_T of the synthetic set against the training set, with the held-out real set as the reference."""
    from sklearn.cluster import KMeans

    cells = cells or default_cells(len(test), len(synth))
    if len(train) < cells:
        raise ValueError(f"the data-copying test needs {cells} training images (one per cell), got {len(train)}")
    kmeans = KMeans(n_clusters=cells, n_init=1, random_state=seed).fit(np.asarray(train, np.float64))
    train_cell = kmeans.labels_
    test_cell = kmeans.predict(np.asarray(test, np.float64))
    synth_cell = kmeans.predict(np.asarray(synth, np.float64))
    used, z, weight = [], [], []
    for cell in range(cells):
        members = np.flatnonzero(train_cell == cell)
        t, q = test[test_cell == cell], synth[synth_cell == cell]
        if len(q) < min_synth or len(t) == 0 or len(members) == 0:
            continue
        base = train[members]
        d_test = nearest(t, base, 1)[0][:, 0]
        d_synth = nearest(q, base, 1)[0][:, 0]
        used.append(cell)
        z.append(mann_whitney_z(d_synth, d_test))
        weight.append(len(t) / len(test))
    if not used:
        raise ValueError(
            f"no cell of the data-copying test has {min_synth} synthetic and 1 held-out image ({cells} cells, "
            f"{len(synth)} synthetic, {len(test)} held-out images)"
        )
    weights = np.asarray(weight) / np.sum(weight)
    z_arr = np.asarray(z)
    return DataCopying(float(weights @ z_arr), cells, np.asarray(used), z_arr, weights)
