"""The one exact neighbour search against a float64 brute force (scipy's cdist, differences in float64): every
batching, ties, planted copies, near-ties float32 cannot separate, a huge common offset, and bad input."""

import sys

import numpy as np
import pytest
from chexbench_common.neighbours import error_factor, exact_nearest_sq, knn_radii_sq, nearest
from scipy.spatial.distance import cdist

pytest.importorskip("faiss")


def reference(query, base, k):
    d = cdist(np.asarray(query, np.float64), np.asarray(base, np.float64))
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


def assert_exact(query, base, k, **kw):
    d, i = nearest(query, base, k, **kw)
    ref_d, ref_i = reference(query, base, k)
    assert d.dtype == np.float64 and i.dtype == np.int64
    assert (i == ref_i).all()
    np.testing.assert_allclose(d, ref_d, rtol=1e-12, atol=0)
    return d, i


@pytest.mark.parametrize("batch", [7, 64, 4096])
def test_equals_cdist_for_any_batching(batch):
    rng = np.random.default_rng(batch)
    query, base = rng.normal(size=(150, 24)), rng.normal(size=(333, 24))
    calls = []
    assert_exact(query, base, 5, batch=batch, on_batch=calls.append)
    assert sum(calls) == 150 and len(calls) == -(-150 // batch)


def test_planted_copies_and_near_copies_are_found_at_rank_one():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5000, 768)).astype(np.float32) * 10
    picks = rng.choice(len(base), 50, replace=False)
    query = np.concatenate([base[picks[:25]], base[picks[25:]] + rng.normal(scale=1e-3, size=(25, 768))])
    d, i = nearest(query, base, 3, batch=512)
    assert (i[:, 0] == picks).all()
    assert (d[:25, 0] == 0).all() and (d[25:, 0] > 0).all()


def test_ties_are_broken_by_the_lower_index_whatever_the_batching():
    base = np.zeros((10, 3))
    base[:, 0] = [1, 1, 1, 2, 2, 0.5, 0.5, 3, 3, 3]
    query = np.zeros((1, 3))
    for batch in (1, 3, 10):
        d, i = nearest(query, base, 6, batch=batch)
        assert i[0].tolist() == [5, 6, 0, 1, 2, 3]


def test_near_ties_float32_cannot_separate_are_ordered_exactly():
    """30 base points at distances 1 + j·1e-9 (float32 rounds them all to 1), stored in reverse order among far
    points: more than k + SLACK of them tie in float32, so only the exact fallback can find the true 5 nearest."""
    rng = np.random.default_rng(4)
    directions = rng.normal(size=(30, 16))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    near = directions * (1 + 1e-9 * np.arange(30))[:, None]
    far = rng.normal(size=(400, 16)) + 10
    base = np.concatenate([far[:200], near[::-1], far[200:]])
    d, i = assert_exact(np.zeros((1, 16)), base, 5)
    assert i[0].tolist() == [229, 228, 227, 226, 225]
    assert np.unique(d.astype(np.float32)).size == 1  # indistinguishable in float32


def test_a_huge_common_offset_and_duplicates_are_decided_exactly():
    """Points around 3e4 in every coordinate: |x|² - 2xᵀy + |y|² in float32 would be noise without the centring."""
    rng = np.random.default_rng(2)
    base = (rng.standard_normal((300, 16)) + 3e4).astype(np.float32)
    base = np.concatenate([base, base[:20]])  # exact duplicates: ties at distance 0
    query = np.concatenate([base[:10], (rng.standard_normal((40, 16)) + 3e4).astype(np.float32)])
    assert_exact(query, base, 4)


def test_a_lattice_of_exact_ties():
    lattice = np.stack(np.meshgrid(np.arange(6), np.arange(6), np.arange(4)), -1).reshape(-1, 3).astype(np.float32)
    assert_exact(lattice + np.float32(0.5), lattice, 12)
    assert_exact(lattice, lattice, 7)


def test_the_exact_fallback_alone_equals_cdist():
    rng = np.random.default_rng(5)
    query, base = rng.normal(size=(40, 12)) + 100, rng.normal(size=(900, 12)) + 100
    best, ids = exact_nearest_sq(query, base, 6, base.mean(0), chunk=128)
    ref_d, ref_i = reference(query, base, 6)
    assert (ids == ref_i).all()
    np.testing.assert_allclose(np.sqrt(best), ref_d, rtol=1e-12, atol=0)


def test_the_float32_error_bound_holds_on_faiss_distances():
    """The bound the certificate relies on, checked on faiss's own float32 output for many pairs."""
    import faiss

    rng = np.random.default_rng(6)
    base = (rng.normal(size=(2000, 64)) * rng.uniform(0.1, 10, size=(2000, 1))).astype(np.float32)
    query = rng.normal(size=(300, 64)).astype(np.float32) * 3
    d32, ids = faiss.knn(query, base, 50)
    exact = cdist(query.astype(np.float64), base.astype(np.float64))[np.arange(300)[:, None], ids] ** 2
    norms = (query.astype(np.float64) ** 2).sum(1)[:, None] + (base.astype(np.float64) ** 2).sum(1)[ids]
    assert (np.abs(d32 - exact) <= error_factor(64) * norms).all()


def test_self_radii_equal_the_sorted_distance_matrix():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(400, 20)) + 50, np.zeros((3, 20)) + 50])  # three duplicates: radius 0 at k=1
    d = cdist(x, x)
    for k in (1, 4):
        np.testing.assert_allclose(np.sqrt(knn_radii_sq(x, k, tile=64)), np.sort(d, axis=1)[:, k], rtol=1e-12)


def test_importing_the_engine_loads_neither_faiss_nor_torch(tmp_path):
    import subprocess

    code = "import chexbench_common.neighbours, sys; print('faiss' in sys.modules, 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]


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
        nearest(query, base, k)
