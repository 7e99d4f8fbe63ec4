"""The verdict rules of every kind: pass only when the relation holds beyond the CIs, underpowered when the CIs
cannot show it, fail when the values contradict it."""

from __future__ import annotations

import pytest
from chexbench_validate.kinds import FAIL, KINDS, PASS, UNDERPOWERED, Point


def series(values, cis=None, controls=None):
    """Points at levels 0..n-1; cis: one (lo, hi) per value, or a half-width for all, or None for no CI."""
    points = []
    for level, value in enumerate(values):
        if cis is None:
            lo = hi = None
        elif isinstance(cis, int | float):
            lo, hi = value - cis, value + cis
        else:
            lo, hi = cis[level]
        control = controls[level] if controls else ("original" if level == 0 else "blur")
        points.append(Point(f"s{level}", control, float(level), f"L{level}", value, lo, hi))
    return points


@pytest.mark.parametrize(
    ("kind", "values", "ci", "verdict"),
    [
        ("monotone_increasing", [1, 2, 3, 4, 5], 0.4, PASS),
        ("monotone_increasing", [1, 2, 3, 4, 5], 0.6, UNDERPOWERED),  # adjacent CIs overlap
        ("monotone_increasing", [1, 2, 3, 4, 5], None, UNDERPOWERED),  # no CI: never a pass
        ("monotone_increasing", [1, 2, 4, 3, 5], 0.1, FAIL),  # one step down
        ("monotone_increasing", [5, 4, 3, 2, 1], 0.1, FAIL),  # a sign flip
        ("monotone_increasing", [1, 2, 2, 3, 4], 0.1, FAIL),  # a tie is not an increase
        ("monotone_decreasing", [5, 4, 3, 2, 1], 0.4, PASS),
        ("monotone_decreasing", [1, 2, 3, 4, 5], 0.4, FAIL),
        ("falls", [1.0, 0.8, 0.3, 0.0, 0.0], 0.05, PASS),  # a bounded metric may stay at its floor
        ("falls", [1.0, 0.8, 0.3, 0.0, 0.0], 0.6, UNDERPOWERED),  # first and last overlap
        ("falls", [1.0, 0.5, 0.9, 0.1, 0.0], 0.05, FAIL),  # a step up beyond the CIs
        ("falls", [1.0, 0.5, 0.55, 0.1, 0.0], 0.1, PASS),  # a step up inside the CIs is noise
        ("falls", [0.5, 0.6, 0.6, 0.7, 0.9], 0.01, FAIL),
        ("rises", [0.0, 0.2, 0.5, 0.9, 1.0], 0.05, PASS),
    ],
)
def test_series_kinds(kind, values, ci, verdict):
    judgement = KINDS[kind](series(values, ci), {})
    assert judgement.verdict == verdict, judgement.reason


def test_monotone_statistic_is_spearman_rho():
    judgement = KINDS["monotone_increasing"](series([1, 3, 2, 4], 0.1), {})
    assert judgement.verdict == FAIL
    assert judgement.statistic == pytest.approx(0.8)
    assert "does not increase" in judgement.reason


def test_missing_value_is_underpowered_with_the_stage_note():
    points = series([1, 2, 3], 0.1)
    points[1] = Point("s1", "blur", 1.0, "L1", None, None, None, note="fewer samples than FID needs")
    judgement = KINDS["monotone_increasing"](points, {})
    assert judgement.verdict == UNDERPOWERED
    assert "fewer samples than FID needs" in judgement.reason


def test_one_level_is_underpowered():
    assert KINDS["monotone_increasing"](series([1], 0.1), {}).verdict == UNDERPOWERED


CONTROLS = ["references", "paraphrase", "other", "empty"]


@pytest.mark.parametrize(
    ("values", "cis", "params", "verdict"),
    [
        ([1.0, 0.6, 0.1, 0.0], [(0.95, 1.0), (0.5, 0.7), (0.05, 0.15), (0, 0)], {}, PASS),
        ([1.0, 0.9, 0.1, 0.0], [(0.85, 1.0), (0.8, 0.95), (0.05, 0.15), (0, 0)], {}, UNDERPOWERED),
        # a paraphrase may tie the references when `over` leaves it out
        ([1.0, 1.0, 0.1, 0.0], [(0.95, 1.0), (0.95, 1.0), (0.05, 0.15), (0, 0)], {"over": ["other", "empty"]}, PASS),
        ([0.5, 0.6, 0.1, 0.0], [(0.4, 0.6), (0.5, 0.7), (0.05, 0.15), (0, 0)], {}, FAIL),
        ([1.0, 0.6, 0.1, 0.0], None, {}, UNDERPOWERED),
    ],
)
def test_maximal_at(values, cis, params, verdict):
    judgement = KINDS["maximal_at"](series(values, cis, CONTROLS), {"control": "references", **params})
    assert judgement.verdict == verdict, judgement.reason


@pytest.mark.parametrize(
    ("values", "cis", "verdict"),
    [
        ([0.8, 0.5], [(0.7, 0.9), (0.4, 0.6)], PASS),
        ([0.8, 0.5], [(0.5, 0.9), (0.4, 0.6)], UNDERPOWERED),
        ([0.5, 0.8], [(0.4, 0.6), (0.7, 0.9)], FAIL),
    ],
)
def test_greater(values, cis, verdict):
    points = series(values, cis, ["matched", "shuffled"])
    assert KINDS["greater"](points, {"high": "matched", "low": "shuffled"}).verdict == verdict
