"""Tiled precision/recall/density/coverage against the `prdc` package and a float64 brute force."""

import contextlib
import io
import tracemalloc

import numpy as np
import pytest
from chexbench_fidelity.manifold import compute_prdc, knn_radii_sq
from fidelity_data import correlated
from prdc import compute_prdc as prdc_reference


def reference(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        return {name: float(v) for name, v in prdc_reference(real, fake, k).items()}


def brute_force(real, fake, k):
    """P/R/D/C from full float64 distance matrices computed from differences (small sets only)."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)

    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    r_radius = np.sort(dist(real, real), axis=1)[:, k]
    f_radius = np.sort(dist(fake, fake), axis=1)[:, k]
    d = dist(real, fake)  # (real, fake)
    inside = d < r_radius[:, None]
    return {
        "precision": inside.any(0).mean(),
        "recall": (d < f_radius[None, :]).any(1).mean(),
        "density": inside.sum(0).mean() / k,
        "coverage": (d.min(1) < r_radius).mean(),
    }


@pytest.mark.parametrize(
    ("n_real", "n_fake", "d", "k", "tile"),
    [
        (300, 250, 16, 5, 64),  # many tiles, uneven sizes
        (800, 900, 64, 5, 128),
        (120, 200, 32, 3, 2048),  # one tile
        (40, 33, 8, 5, 16),
    ],
)
def test_identical_to_prdc(n_real, n_fake, d, k, tile):
    rng = np.random.default_rng(n_real + d)
    real = correlated(rng, n_real, d) + 5
    fake = correlated(rng, n_fake, d, shift=0.1, scale=0.9) + 5
    ours = compute_prdc(real, fake, k, tile=tile)
    assert ours.as_dict() == reference(real, fake, k)
    assert 0 < ours.precision < 1 or 0 < ours.recall < 1  # not a degenerate case


def test_radii_are_exact_kth_neighbour_distances():
    rng = np.random.default_rng(1)
    x = correlated(rng, 500, 24)
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
    np.testing.assert_allclose(np.sqrt(knn_radii_sq(x, 4, tile=64)), np.sort(d, axis=1)[:, 4], rtol=1e-12)


def test_float32_traps_are_decided_exactly():
    """A huge common offset makes float32 distance GEMMs useless; duplicates make zero radii; ties on a lattice."""
    rng = np.random.default_rng(2)
    offset = 3e4
    real = (rng.standard_normal((200, 16)) + offset).astype(np.float32)
    fake = np.concatenate([real[:50], (rng.standard_normal((150, 16)) + offset).astype(np.float32)])
    real = np.concatenate([real, real[:10]])  # duplicates: zero radii for those points
    assert compute_prdc(real, fake, 5, tile=32).as_dict() == pytest.approx(brute_force(real, fake, 5), abs=0)
    lattice = np.stack(np.meshgrid(np.arange(8), np.arange(8), np.arange(4)), -1).reshape(-1, 3).astype(np.float32)
    shifted = lattice + np.float32(0.5)
    assert compute_prdc(lattice, shifted, 5, tile=32).as_dict() == pytest.approx(
        brute_force(lattice, shifted, 5), abs=0
    )
    radii = np.sqrt(knn_radii_sq(lattice, 5, tile=32))
    assert set(np.round(radii, 6)) <= {1.0, np.float64(np.sqrt(2)).round(6)}


def test_memory_stays_far_below_an_n_by_n_matrix():
    rng = np.random.default_rng(3)
    n, d = 3000, 32
    real, fake = correlated(rng, n, d), correlated(rng, n, d, shift=0.1)
    tracemalloc.start()
    compute_prdc(real, fake, 5, tile=256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < n * n * 4 / 4  # a quarter of one float32 N x N matrix (prdc holds three plus an int64 one)


def test_sets_too_small_for_k_are_refused():
    x = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="more than 5 samples"):
        compute_prdc(x, np.ones((10, 3), np.float32), 5)


@pytest.mark.parametrize("n_real, n_synth, tile", [(300, 170, 64), (50, 50, 2048), (129, 64, 64)])
def test_the_tile_pass_reports_every_tile_once(n_real, n_synth, tile):
    from chexbench_fidelity.manifold import compute_prdc_kid, pass_tiles

    rng = np.random.default_rng(3)
    real, synth = correlated(rng, n_real, 16), correlated(rng, n_synth, 16)
    ticks = []
    result, _ = compute_prdc_kid(real, synth, 5, tile=tile, on_tile_done=ticks.append)
    assert len(ticks) == sum(ticks) == pass_tiles(n_real, n_synth, tile)
    assert result == compute_prdc(real, synth, 5, tile=tile)  # reporting changes nothing
