"""The kinds of the privacy, utility and alignment relations: rates against their planted share (Wilson CIs), every
copy at rank 1, a value held by its CI, an order of controls."""

from __future__ import annotations

import pytest
from chexbench_validate.kinds import FAIL, KINDS, PASS, UNDERPOWERED, Point
from scipy.stats import binomtest


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return ci.low, ci.high


def rates(flagged: list[int], n: int = 32, shares=(0, 1, 2, 6, 32)) -> list[Point]:
    """A privacy series: sets of n with `shares` copies, `flagged` of each flagged."""
    return [
        Point(f"k{k}", "none" if k == 0 else "exact", k / n, f"{k}/{n}", f / n, *wilson(f, n))
        for k, f in zip(shares, flagged, strict=True)
    ]


@pytest.mark.parametrize(
    ("flagged", "within", "at_most"),
    [
        ([2, 3, 4, 7, 32], PASS, PASS),  # copies caught, the rest flagged near 5 %
        ([0, 1, 2, 6, 32], PASS, PASS),  # no false positive at all is still inside the CI of 5 %
        ([0, 0, 0, 0, 0], FAIL, PASS),  # a threshold at 0 flags nothing: the copies are missed
        ([32, 32, 32, 32, 32], FAIL, FAIL),  # a threshold that flags everything
        ([2, 2, 2, 3, 12], FAIL, PASS),  # moderate copies mostly missed: fewer than planted is allowed by at_most
    ],
)
def test_flag_rates_against_the_planted_share(flagged, within, at_most):
    points = rates(flagged)
    assert KINDS["within_wilson"](points, {"nominal": 0.05}).verdict == within
    assert KINDS["at_most_wilson"](points, {"nominal": 0.05}).verdict == at_most


def test_a_rate_without_its_interval_is_underpowered():
    points = [Point("a", "exact", 1.0, "32/32", 1.0, None, None)]
    assert KINDS["within_wilson"](points, {"nominal": 0.05}).verdict == UNDERPOWERED
    assert KINDS["at_most_wilson"](points, {"nominal": 0.05}).verdict == UNDERPOWERED


def test_all_equal_needs_every_point():
    ones = rates([32, 32, 32, 32, 32])
    assert KINDS["all_equal"](ones, {"value": 1}).verdict == PASS
    assert KINDS["all_equal"](rates([32, 32, 32, 31, 32]), {"value": 1}).verdict == FAIL


def point(control: str, value: float, half: float | None) -> Point:
    lo, hi = (None, None) if half is None else (value - half, value + half)
    return Point(control, control, 0.0, control, value, lo, hi)


@pytest.mark.parametrize(
    ("value", "half", "verdict"),
    [(0.52, 0.1, PASS), (0.3, 0.1, FAIL), (0.5, None, UNDERPOWERED)],
)
def test_approx_equal_asks_the_interval(value, half, verdict):
    points = [point("absent", value, half), point("intact", 0.9, 0.05)]
    assert KINDS["approx_equal"](points, {"control": "absent", "value": 0.5}).verdict == verdict


@pytest.mark.parametrize(
    ("values", "half", "strict", "verdict"),
    [
        ((0.9, 0.5, 0.1), 0.1, [True, True], PASS),
        ((0.9, 0.5, 0.1), 0.3, [True, True], UNDERPOWERED),  # in order, CIs overlap
        ((0.9, 0.1, 0.5), 0.1, [True, True], FAIL),  # the middle pair reversed
        ((0.9, 0.5, 0.55), 0.1, [True, False], PASS),  # >= allows a tie inside the CIs
        ((0.9, 0.2, 0.6), 0.1, [True, False], FAIL),  # ... not a step up beyond them
        ((0.5, 0.9, 0.1), 0.1, [True, True], FAIL),
    ],
)
def test_ordered_controls(values, half, strict, verdict):
    points = [point(c, v, half) for c, v in zip(("matched", "other", "shuffled"), values, strict=True)]
    params = {"order": ["matched", "other", "shuffled"], "strict": strict}
    assert KINDS["ordered"](points, params).verdict == verdict
