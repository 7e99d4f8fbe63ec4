"""FID against independent references: scipy sqrtm, closed-form Gaussians, torchmetrics, the nuclear-norm identity."""

import numpy as np
import pytest
import scipy.linalg
from chexbench_fidelity.cache import StatsCache, stats_key
from chexbench_fidelity.frechet import (
    Gaussian,
    fd_infinity,
    fit_gaussian,
    frechet_distance,
    frechet_distance_low_rank,
    psd_sqrt,
    trace_sqrt_product,
)
from fidelity_data import correlated


def sqrtm_fid(x: np.ndarray, y: np.ndarray) -> float:
    """The pytorch-fid / clean-fid formula: np.cov + scipy.linalg.sqrtm of the product."""
    mu1, mu2 = x.astype(np.float64).mean(0), y.astype(np.float64).mean(0)
    s1, s2 = np.cov(x.astype(np.float64), rowvar=False), np.cov(y.astype(np.float64), rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize(("n", "d"), [(400, 32), (2000, 64)])
def test_fid_matches_scipy_sqrtm(n, d):
    rng = np.random.default_rng(n)
    x, y = correlated(rng, n, d), correlated(rng, n + 37, d, shift=0.1, scale=1.3)
    ours = frechet_distance(fit_gaussian(x), fit_gaussian(y))
    assert ours == pytest.approx(sqrtm_fid(x, y), rel=1e-6)
    assert ours > 0.01


def test_statistics_equal_numpy_and_weights_equal_repeated_rows():
    rng = np.random.default_rng(1)
    x = correlated(rng, 300, 16)
    g = fit_gaussian(x, chunk=64)  # several chunks
    np.testing.assert_allclose(g.mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(g.cov, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-12)
    weights = rng.integers(0, 4, len(x))
    gw = fit_gaussian(x, weights, chunk=64)
    repeated = np.repeat(x, weights, axis=0).astype(np.float64)
    assert gw.n == len(repeated)
    np.testing.assert_allclose(gw.cov, np.cov(repeated, rowvar=False), rtol=1e-10, atol=1e-12)


def test_two_gaussians_in_closed_form():
    rng = np.random.default_rng(2)
    d = 12
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    # commuting covariances (same eigenvectors): FID = |Δμ|² + Σ (√a - √b)²
    g1, g2 = Gaussian(10, mu1, (q * a) @ q.T), Gaussian(10, mu2, (q * b) @ q.T)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(g1, g2) == pytest.approx(expected, rel=1e-10)
    # Σ2 = c² Σ1 for any Σ1: Tr √(Σ1 Σ2) = c Tr Σ1
    s1 = np.cov(rng.standard_normal((50, d)), rowvar=False)
    assert trace_sqrt_product(psd_sqrt(s1), 4.0 * s1) == pytest.approx(2.0 * np.trace(s1), rel=1e-10)
    # equal Gaussians: 0
    assert frechet_distance(g1, g1) == pytest.approx(0.0, abs=1e-10)


def test_rank_deficient_covariance_matches_nuclear_norm_route():
    """n < d: √Σ has zero eigenvalues; clipping keeps it finite and equal to ‖√Σ1 √Σ2‖_* (another identity)."""
    rng = np.random.default_rng(3)
    x, y = correlated(rng, 20, 48), correlated(rng, 30, 48, shift=0.2)
    g1, g2 = fit_gaussian(x), fit_gaussian(y)
    w = np.linalg.eigvalsh(g1.cov)
    assert w.min() < 0 < w.max()  # rounding noise makes some eigenvalues negative
    nuclear = np.linalg.svd(psd_sqrt(g1.cov) @ psd_sqrt(g2.cov), compute_uv=False).sum()
    # eigenvalues at rounding level (~1e-16) contribute their square roots (~1e-8) to either route
    assert trace_sqrt_product(psd_sqrt(g1.cov), g2.cov) == pytest.approx(nuclear, rel=1e-6)
    assert np.isfinite(psd_sqrt(g1.cov)).all()
    r = psd_sqrt(g1.cov)
    np.testing.assert_allclose(r @ r, g1.cov, atol=1e-10)


def test_low_rank_route_equals_scipy_sqrtm_with_and_without_weights():
    rng = np.random.default_rng(4)
    x, y = correlated(rng, 25, 64), correlated(rng, 31, 64, shift=0.3, scale=1.2)
    assert frechet_distance_low_rank(x, y) == pytest.approx(sqrtm_fid(x, y), rel=1e-6)
    wx, wy = rng.integers(0, 3, len(x)), rng.integers(0, 3, len(y))
    repeated = sqrtm_fid(np.repeat(x, wx, axis=0), np.repeat(y, wy, axis=0))
    assert frechet_distance_low_rank(x, y, wx, wy) == pytest.approx(repeated, rel=1e-6)
    big_x, big_y = correlated(rng, 300, 16), correlated(rng, 280, 16, shift=0.1)  # also right when n > d
    assert frechet_distance_low_rank(big_x, big_y) == pytest.approx(sqrtm_fid(big_x, big_y), rel=1e-6)


def test_fid_matches_torchmetrics_on_identical_features():
    torch = pytest.importorskip("torch")
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):
        num_features = 40

        def forward(self, x):
            return x

    rng = np.random.default_rng(4)
    x, y = correlated(rng, 500, 40), correlated(rng, 450, 40, shift=0.3)
    metric = FrechetInceptionDistance(feature=Features())
    metric.update(torch.from_numpy(x.astype(np.float64)), real=True)
    metric.update(torch.from_numpy(y.astype(np.float64)), real=False)
    assert frechet_distance(fit_gaussian(x), fit_gaussian(y)) == pytest.approx(float(metric.compute()), rel=1e-8)


def test_fd_infinity_removes_the_small_sample_bias():
    rng = np.random.default_rng(5)
    d = 32
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    cov = (q * rng.uniform(0.2, 2.0, d)) @ q.T
    true_real = Gaussian(10**9, np.zeros(d), cov)
    shift = np.full(d, 0.05)
    truth = float(shift @ shift)  # same covariance: only the mean differs
    sqrt_real = psd_sqrt(cov)
    fid_n, fd_inf = [], []
    for _ in range(5):  # average over independent samples: the bias is systematic, the noise is not
        synth = rng.multivariate_normal(shift, cov, size=3000)
        fid_n.append(frechet_distance(true_real, fit_gaussian(synth), sqrt_real))
        fdi = fd_infinity(true_real, sqrt_real, synth, seed=0)
        fd_inf.append(fdi.value)
    assert len(fdi.sizes) == 15 and fdi.sizes[-1] == 3000 and fdi.sizes[0] == 300
    assert fdi.slope > 0  # FID_n falls with n
    assert np.mean(fid_n) - truth > 0.05  # FID at n = 3000 is clearly biased upwards ...
    assert abs(np.mean(fd_inf) - truth) < 0.3 * (np.mean(fid_n) - truth)  # ... FD-infinity much less
    assert fd_infinity(true_real, sqrt_real, synth, seed=0) == fdi  # seeded


def test_real_statistics_cache_is_keyed_by_content_and_rows(tmp_path):
    rng = np.random.default_rng(6)
    x = correlated(rng, 100, 8)
    cache = StatsCache(tmp_path)
    calls = []

    def compute(rows):
        def run():
            calls.append(rows)
            g = fit_gaussian(x[rows])
            return g, psd_sqrt(g.cov)

        return run

    all_rows, half = np.arange(100), np.arange(50)
    g1, s1 = cache.get(stats_key("f" * 64, "inception", all_rows), compute(all_rows))
    g2, s2 = cache.get(stats_key("f" * 64, "inception", all_rows), compute(all_rows))
    cache.get(stats_key("f" * 64, "inception", half), compute(half))
    cache.get(stats_key("e" * 64, "inception", all_rows), compute(all_rows))
    assert len(calls) == 3 and cache.hits == 1
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(g1.cov, g2.cov)
    assert not list(tmp_path.rglob("*.tmp"))
    # a corrupt file is recomputed, not trusted
    for path in tmp_path.rglob("*.npz"):
        path.write_bytes(b"not a zip")
    cache.get(stats_key("f" * 64, "inception", all_rows), compute(all_rows))
    assert len(calls) == 4
