"""Flag rules, calibration on a holdout and Wilson intervals against independent references."""

import math

import numpy as np
import pytest
from chexbench_common.neighbours import nearest
from chexbench_privacy.audit import calibrate, flags, nndr, rate_ci
from scipy.stats import norm


def test_nndr_is_the_ratio_and_zero_for_exact_copies():
    assert nndr(np.array([0.0, 1.0, 2.0]), np.array([0.0, 4.0, 2.0])).tolist() == [0.0, 0.25, 1.0]


def test_calibration_records_quantiles_and_sources():
    dcr, reid = np.arange(100.0), np.linspace(0, 1, 101)
    th = calibrate(dcr, reid, dcr_quantile=0.05, nndr_max=1 / 3, reid_quantile=0.99)
    assert th.dcr == pytest.approx(np.quantile(dcr, 0.05)) and th.reid == pytest.approx(0.99)
    assert th.nndr == pytest.approx(1 / 3)
    assert "n=100" in th.sources["dcr"] and "0.99 quantile" in th.sources["reid"]
    off = calibrate(dcr, None, dcr_quantile=0.05, nndr_max=0.5, reid_quantile=0.99)
    assert math.isinf(off.reid) and "disabled" in off.sources["reid"]
    with pytest.raises(ValueError, match="holdout is empty"):
        calibrate(np.array([]), dcr_quantile=0.05, nndr_max=0.5, reid_quantile=0.99)


def test_flags_are_per_rule_and_their_union():
    th = calibrate(
        np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3]), dcr_quantile=0.0, nndr_max=0.5, reid_quantile=1.0
    )
    out = flags(
        np.array([0.5, 2.0, 2.0, np.nan]), np.array([0.9, 0.1, 0.9, np.nan]), np.array([0.0, 0.0, 0.9, np.nan]), th
    )
    assert out["dcr"].tolist() == [True, False, False, False]
    assert out["nndr"].tolist() == [False, True, False, False]
    assert out["reid"].tolist() == [False, False, True, False]
    assert out["any"].tolist() == [True, True, True, False]


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (17, 2000)])
def test_wilson_interval_equals_its_closed_form(k, n):
    z, p = norm.ppf(0.975), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = centre - half, centre + half
    assert rate_ci(k, n) == pytest.approx((low, high), abs=1e-12)
    assert all(math.isnan(v) for v in rate_ci(0, 0))


def test_without_copies_the_dcr_flag_rate_matches_its_nominal_rate():
    """Synthetic and holdout drawn from the same Gaussian as the training pool: nothing is a copy, so the 5 % DCR
    threshold from the holdout flags about 5 % of the synthetic images (binomial 99.9 % band)."""
    rng = np.random.default_rng(3)
    train, holdout, synth = (rng.normal(size=(n, 16)) for n in (4000, 2000, 2000))
    hold_d = nearest(holdout, train, 2)[0]
    synth_d = nearest(synth, train, 2)[0]
    th = calibrate(hold_d[:, 0], dcr_quantile=0.05, nndr_max=0.0, reid_quantile=0.99)
    rate = flags(synth_d[:, 0], nndr(synth_d[:, 0], synth_d[:, 1]), np.zeros(len(synth)), th)["dcr"].mean()
    half_width = 3.3 * math.sqrt(0.05 * 0.95 / len(synth)) + 3.3 * math.sqrt(0.05 * 0.95 / len(holdout))
    assert abs(rate - 0.05) < half_width
