"""KID and IS against independent references: direct O(n²) formulas written here, and torchmetrics."""

import numpy as np
import pytest
from chexbench_fidelity.inception_score import inception_score
from chexbench_fidelity.kid import kernel_inception_distance, mmd2_unbiased, subset_draws
from chexbench_fidelity.manifold import compute_prdc, compute_prdc_kid
from fidelity_data import correlated


def direct_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD² written out pair by pair in float64 (Bińkowski et al. 2018, eq. 4)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    m, d = x.shape

    def k(a, b):
        return (a @ b / d + coef) ** degree

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / m**2


@pytest.mark.parametrize("m", [40, 131])  # 131: the self-kernel sums run in symmetric half-size blocks
def test_mmd2_matches_the_pairwise_formula(m):
    rng = np.random.default_rng(0)
    x, y = correlated(rng, m, 12), correlated(rng, m, 12, shift=0.4)
    value = mmd2_unbiased(x, y)
    assert value == pytest.approx(direct_mmd2(x, y), rel=1e-5)
    assert value > 0
    # unbiased: two samples of one distribution give values around 0, of both signs
    same = [mmd2_unbiased(correlated(rng, m, 12), correlated(rng, m, 12)) for _ in range(20)]
    assert min(same) < 0 < max(same)


def test_kid_is_the_mean_and_population_std_over_seeded_subsets():
    rng = np.random.default_rng(1)
    x, y = correlated(rng, 90, 10), correlated(rng, 70, 10, shift=0.3)
    kid = kernel_inception_distance(x, y, subsets=6, subset_size=30, seed=3)
    assert kid.subset_size == 30 and len(kid.values) == 6
    draws = np.random.default_rng(3)
    expected = []
    for _ in range(6):
        ri, si = draws.choice(90, 30, replace=False), draws.choice(70, 30, replace=False)
        expected.append(direct_mmd2(x[ri], y[si]))
    assert kid.mean == pytest.approx(np.mean(expected), rel=1e-5)
    assert kid.std == pytest.approx(np.std(expected), rel=1e-4)
    assert kernel_inception_distance(x, y, subsets=6, subset_size=30, seed=3).mean == kid.mean
    assert kernel_inception_distance(x, y, subsets=6, subset_size=30, seed=4).mean != kid.mean
    # subset size is capped at the smaller set instead of failing
    assert kernel_inception_distance(x, y, subsets=2, subset_size=1000).subset_size == 70
    with pytest.raises(ValueError, match="at least 2 samples"):
        kernel_inception_distance(x[:1], y)


@pytest.fixture(scope="module")
def torchmetrics_kid():
    """Features, torchmetrics' KID mean and std on them, and the exact subsets it drew."""
    torch = pytest.importorskip("torch")
    from torchmetrics.image.kid import KernelInceptionDistance

    rng = np.random.default_rng(2)
    x, y = correlated(rng, 120, 16), correlated(rng, 110, 16, shift=0.2)
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=5, subset_size=50)
    metric.update(torch.from_numpy(x), real=True)
    metric.update(torch.from_numpy(y), real=False)
    torch.manual_seed(11)
    tm_mean, tm_std = metric.compute()
    torch.manual_seed(11)  # torchmetrics draws randperm(n_real)[:m], randperm(n_fake)[:m] per subset
    draws = [(torch.randperm(120)[:50].numpy(), torch.randperm(110)[:50].numpy()) for _ in range(5)]
    return x, y, float(tm_mean), float(tm_std), draws


def test_kid_matches_torchmetrics_on_the_same_subsets(torchmetrics_kid):
    x, y, tm_mean, tm_std, draws = torchmetrics_kid
    ours = kernel_inception_distance(x, y, subsets=5, subset_size=50, draws=draws)
    assert ours.mean == pytest.approx(tm_mean, rel=1e-5)
    assert ours.std == pytest.approx(tm_std, rel=1e-4)


@pytest.mark.parametrize(
    ("n_real", "n_synth", "d", "tile", "size", "offset"),
    [
        (300, 250, 16, 64, 100, 0.0),  # many tiles of uneven sizes
        (120, 200, 32, 2048, 50, 0.0),  # one tile per product
        (260, 230, 24, 48, 1000, 4.0),  # subset size capped at N_synth; large common part of the kernel values
    ],
)
def test_kid_fused_into_the_prdc_tiles_equals_the_standalone_kid(n_real, n_synth, d, tile, size, offset):
    rng = np.random.default_rng(n_real + d)
    x, y = correlated(rng, n_real, d) + offset, correlated(rng, n_synth, d, shift=0.3, scale=0.9) + offset
    prdc, kid = compute_prdc_kid(x, y, 5, tile=tile, subsets=7, subset_size=size, seed=3)
    alone = kernel_inception_distance(x, y, subsets=7, subset_size=size, seed=3)
    assert prdc == compute_prdc(x, y, 5, tile=tile)
    assert kid.subset_size == alone.subset_size == min(size, n_real, n_synth)
    assert kid.mean == pytest.approx(alone.mean, rel=1e-6)
    np.testing.assert_allclose(kid.values, alone.values, rtol=2e-5)  # single subsets: no averaging of rounding
    assert kid.std == pytest.approx(alone.std, rel=1e-4)
    m = kid.subset_size
    exact = [direct_mmd2(x[ri], y[si]) for ri, si in list(subset_draws(n_real, n_synth, 7, m, 3))[:2]]
    np.testing.assert_allclose(kid.values[:2], exact, rtol=2e-5)


def test_fused_kid_on_torchmetrics_subsets(torchmetrics_kid):
    x, y, tm_mean, tm_std, draws = torchmetrics_kid
    _, fused = compute_prdc_kid(x, y, 5, tile=32, draws=draws)
    alone = kernel_inception_distance(x, y, draws=draws)
    assert fused.mean == pytest.approx(alone.mean, rel=1e-6)
    assert fused.mean == pytest.approx(tm_mean, rel=1e-5)
    assert fused.std == pytest.approx(tm_std, rel=1e-4)
    with pytest.raises(ValueError, match="without replacement"):
        compute_prdc_kid(x, y, 5, draws=[(np.array([0, 0, 1]), np.array([0, 1, 2]))])


def direct_is(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """exp(mean KL(p(y|x) || p(y))) per split with scipy's entropy (KL) and softmax."""
    from scipy.special import softmax
    from scipy.stats import entropy

    p = softmax(logits.astype(np.float64), axis=1)
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0)
        scores.append(np.exp(np.mean([entropy(row, marginal) for row in part])))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_the_kl_formula_and_torchmetrics():
    torch = pytest.importorskip("torch")
    from torchmetrics.image.inception import InceptionScore

    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((200, 30)) * 3).astype(np.float32)
    order = np.random.default_rng(0).permutation(200)
    ours = inception_score(logits, splits=10, seed=0)
    assert (ours.mean, ours.std) == pytest.approx(direct_is(logits[order], 10), rel=1e-9)
    assert ours.mean > 1.5

    metric = InceptionScore(feature=torch.nn.Identity(), splits=10)
    metric.update(torch.from_numpy(logits))
    torch.manual_seed(5)
    tm_mean, tm_std = metric.compute()
    torch.manual_seed(5)
    tm_order = torch.randperm(200).numpy()
    same = inception_score(logits, splits=10, order=tm_order)
    assert same.mean == pytest.approx(float(tm_mean), rel=1e-5)
    assert same.std * np.sqrt(10 / 9) == pytest.approx(float(tm_std), rel=1e-4)  # torchmetrics: ddof 1


def test_inception_score_limits():
    uniform = np.zeros((50, 7))
    assert inception_score(uniform, splits=5).mean == pytest.approx(1.0)
    confident = np.full((70, 7), -50.0)
    confident[np.arange(70), np.arange(70) % 7] = 50.0  # one-hot, classes balanced in every split
    assert inception_score(confident, splits=10, order=np.arange(70)).mean == pytest.approx(7.0, rel=1e-6)
    with pytest.raises(ValueError, match="at least 10 samples"):
        inception_score(uniform[:9], splits=10)
