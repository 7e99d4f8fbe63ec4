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
