"""C_T data-copying test: its z-scores against a pair count, planted copies flagged, a copy-free set not."""

import numpy as np
import pytest
from chexbench_fidelity.data_copying import data_copying_test, mann_whitney_z


def test_z_score_equals_a_direct_pair_count():
    rng = np.random.default_rng(0)
    q, p = rng.exponential(size=37), np.r_[rng.exponential(size=25), 0.5, 0.5]
    q[:3] = 0.5  # ties count one half
    u = sum((qi > pj) + 0.5 * (qi == pj) for qi in q for pj in p)
    m, n = len(q), len(p)
    assert mann_whitney_z(q, p) == pytest.approx((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12), rel=1e-12)


def sets(seed: int, copies: float):
    """Training, held-out and synthetic samples of one mixture; `copies` of the synthetic set are training images
    with a little noise, the rest fresh draws."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(6, 8))

    def draw(n):
        return centres[rng.integers(0, 6, n)] + rng.normal(size=(n, 8))

    train, test, synth = draw(1200), draw(400), draw(400)
    k = int(copies * len(synth))
    synth[:k] = train[rng.choice(len(train), k, replace=False)] + 0.05 * rng.normal(size=(k, 8))
    return train, test, synth


def test_planted_copies_are_flagged_and_a_copy_free_set_is_not():
    copied = data_copying_test(*sets(1, copies=0.6), seed=0)
    clean = data_copying_test(*sets(1, copies=0.0), seed=0)
    assert copied.statistic < -3 and copied.cells == 8  # 400 // 50 cells
    assert abs(clean.statistic) < 3
    assert np.isclose(copied.weights.sum(), 1.0) and len(copied.z) == len(copied.used)


def test_farther_samples_give_a_positive_statistic_and_the_run_is_seeded():
    train, test, synth = sets(2, copies=0.0)
    blurred = synth + np.random.default_rng(3).normal(scale=1.5, size=synth.shape)  # off the data: underfitting
    assert data_copying_test(train, test, blurred).statistic > 3
    first, again = data_copying_test(train, test, synth, seed=4), data_copying_test(train, test, synth, seed=4)
    assert first.statistic == again.statistic and np.array_equal(first.z, again.z)
