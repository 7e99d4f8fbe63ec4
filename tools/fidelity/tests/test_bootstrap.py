"""Prompt-level resampling: a prompt's real image and its synthetic images move together."""

import numpy as np
import pytest
from chexbench_fidelity.bootstrap import Units, centred_interval, fid_replicates
from fidelity_data import correlated


def paired_units():
    real = np.array([f"p{i}" for i in range(30)], dtype=object)
    synth = np.repeat(real, 3)  # three synthetic images per prompt
    return Units.from_labels(real, synth, paired=True), real, synth


def test_resampled_weights_keep_prompts_together():
    units, real, synth = paired_units()
    rng = np.random.default_rng(0)
    for _ in range(5):
        w_real, w_synth = units.resample(rng)
        assert w_real.sum() == 30  # 30 prompts drawn with replacement
        np.testing.assert_array_equal(np.repeat(w_real, 3), w_synth)
        assert (w_real == 0).any() and (w_real > 1).any()
    ri, si = units.half(np.random.default_rng(1))
    assert len(ri) == 15 and len(si) == 45
    assert set(synth[si]) == set(real[ri])


def test_unpaired_sets_are_resampled_separately():
    units = Units.from_labels(
        np.array(["a", "b", "c", "d"], dtype=object),
        np.array([f"image:{i}" for i in range(10)], dtype=object),
        paired=False,
    )
    w_real, w_synth = units.resample(np.random.default_rng(0))
    assert (w_real.sum(), w_synth.sum()) == (4, 10)
    ri, si = units.half(np.random.default_rng(0))
    assert (len(ri), len(si)) == (2, 5)


def test_centred_interval_and_clipping():
    reps = np.array([10.0, 11.0, 12.0, 13.0, 14.0])  # mean 12: spread -2 .. 2
    assert centred_interval(5.0, reps, 1.0) == (3.0, 7.0)
    assert centred_interval(0.5, reps, 1.0, (0.0, 1.0)) == (0.0, 1.0)


def test_fid_replicates_spread_shrinks_with_more_prompts():
    rng = np.random.default_rng(2)
    spreads = []
    for n in (40, 400):
        real, synth = correlated(rng, n, 6), correlated(rng, 2 * n, 6, shift=0.3)
        ids = np.array([f"p{i}" for i in range(n)], dtype=object)
        units = Units.from_labels(ids, np.repeat(ids, 2), paired=True)
        spreads.append(np.std(fid_replicates(real, synth, units, 30, seed=0)))
    assert spreads[1] < 0.6 * spreads[0]  # ~1/sqrt(n): 10x the prompts, ~0.32x the spread
    assert spreads[0] > 0
    assert np.std(fid_replicates(real, synth, units, 30, seed=0)) == pytest.approx(spreads[1])


def unbiased_mmd2_of_rows(real, synth):
    """The textbook unbiased MMD² (different sizes allowed) with sklearn's polynomial kernel."""
    from sklearn.metrics.pairwise import polynomial_kernel

    def k(a, b):
        return polynomial_kernel(a, b, degree=3, gamma=1.0 / real.shape[1], coef0=1.0)

    m, n = len(real), len(synth)
    xx, yy = k(real, real), k(synth, synth)
    return (
        (xx.sum() - np.trace(xx)) / (m * (m - 1))
        + (yy.sum() - np.trace(yy)) / (n * (n - 1))
        - 2.0 * k(real, synth).mean()
    )


def test_weighted_mmd2_is_the_unbiased_mmd2_of_the_resampled_rows():
    from chexbench_fidelity.bootstrap import weighted_mmd2
    from chexbench_fidelity.kid import kernel_matrix

    rng = np.random.default_rng(4)
    real, synth = correlated(rng, 12, 5), correlated(rng, 9, 5, shift=0.4)
    k_rr, k_ss, k_rs = kernel_matrix(real, real), kernel_matrix(synth, synth), kernel_matrix(real, synth)
    ones_r, ones_s = np.ones(12, np.int64), np.ones(9, np.int64)
    assert weighted_mmd2(k_rr, k_ss, k_rs, ones_r, ones_s) == pytest.approx(unbiased_mmd2_of_rows(real, synth))
    for _ in range(3):  # a row drawn twice pairs with its copy; a row not drawn is gone
        w_real, w_synth = rng.multinomial(12, np.full(12, 1 / 12)), rng.multinomial(9, np.full(9, 1 / 9))
        expected = unbiased_mmd2_of_rows(np.repeat(real, w_real, axis=0), np.repeat(synth, w_synth, axis=0))
        assert weighted_mmd2(k_rr, k_ss, k_rs, w_real, w_synth) == pytest.approx(expected, rel=1e-6)
    assert weighted_mmd2(k_rr, k_ss, k_rs, np.eye(12, dtype=np.int64)[0], ones_s) is None


def test_kid_replicates_are_centred_on_the_sets_and_shrink_with_more_prompts():
    from chexbench_fidelity.bootstrap import kid_replicates

    rng = np.random.default_rng(5)
    spreads = []
    for n in (40, 400):
        real, synth = correlated(rng, n, 6), correlated(rng, n, 6, shift=0.3)
        ids = np.array([f"p{i}" for i in range(n)], dtype=object)
        units = Units.from_labels(ids, ids, paired=True)
        reps = kid_replicates(real, synth, units, 40, seed=0)
        assert len(reps) == 40
        assert abs(reps.mean() - unbiased_mmd2_of_rows(real, synth)) < 3 * reps.std()
        spreads.append(reps.std())
    assert 0 < spreads[1] < 0.6 * spreads[0]
