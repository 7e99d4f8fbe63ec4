"""Exact top-k against scipy's cdist: every tiling, ties, planted copies, bad input."""

import numpy as np
import pytest
from chexbench_privacy.neighbours import exact_topk
from scipy.spatial.distance import cdist


def reference(query, base, k):
    d = cdist(query, base)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


@pytest.mark.parametrize("tile", [7, 64, 4096])
def test_equals_cdist_for_any_tiling(tile):
    rng = np.random.default_rng(tile)
    query, base = rng.normal(size=(150, 24)), rng.normal(size=(333, 24))
    calls = []
    d, i = exact_topk(query, base, 5, tile=tile, on_tile=lambda done, total: calls.append((done, total)))
    ref_d, ref_i = reference(query, base, 5)
    assert (i == ref_i).all() and np.allclose(d, ref_d, rtol=0, atol=1e-12)
    assert d.dtype == np.float64 and i.dtype == np.int64
    assert calls[-1][0] == calls[-1][1] == len(calls)


def test_planted_copies_and_near_copies_are_found_at_rank_one():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5000, 768)).astype(np.float32) * 10
    picks = rng.choice(len(base), 50, replace=False)
    query = np.concatenate([base[picks[:25]], base[picks[25:]] + rng.normal(scale=1e-3, size=(25, 768))])
    d, i = exact_topk(query, base, 3, tile=512)
    assert (i[:, 0] == picks).all()
    assert (d[:25, 0] == 0).all() and (d[25:, 0] > 0).all()


def test_ties_are_broken_by_the_lower_index_whatever_the_tiling():
    base = np.zeros((10, 3))
    base[:, 0] = [1, 1, 1, 2, 2, 0.5, 0.5, 3, 3, 3]
    query = np.zeros((1, 3))
    for tile in (1, 3, 10):
        d, i = exact_topk(query, base, 6, tile=tile)
        assert i[0].tolist() == [5, 6, 0, 1, 2, 3]


@pytest.mark.parametrize(
    ("query", "base", "k", "message"),
    [
        (np.zeros((2, 3)), np.zeros((4, 5)), 1, "dimension mismatch"),
        (np.zeros((2, 3)), np.zeros((4, 3)), 5, "between 1 and the base size 4"),
        (np.full((2, 3), np.nan), np.zeros((4, 3)), 1, "NaN"),
    ],
)
def test_bad_input_is_refused(query, base, k, message):
    with pytest.raises(ValueError, match=message):
        exact_topk(query, base, k)
