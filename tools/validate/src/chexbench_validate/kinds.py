"""The kinds of expected relation and how each is judged from a series of points (value and CI per set).

Every kind returns a Judgement: `pass` only when the relation holds *and* the confidence intervals show it (a
difference inside the intervals is `underpowered`, never a pass); `fail` when the point values contradict it. A point
without a value or without an interval where one is needed makes the relation `underpowered`, with the reason.
A new kind is one function registered with @kind("name"); its parameters come from the relation's `params`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy.stats import spearmanr

PASS, FAIL, UNDERPOWERED, STAND_IN = "pass", "fail", "underpowered", "stand-in"
VERDICTS = (FAIL, UNDERPOWERED, STAND_IN, PASS)  # the report's order: failures first


@dataclass(frozen=True)
class Point:
    """One set's value of the relation's metric."""

    set_id: str
    control: str
    level: float
    level_label: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    note: str = ""

    @property
    def has_ci(self) -> bool:
        return _finite(self.ci_low) and _finite(self.ci_high)

    @property
    def name(self) -> str:
        return set_name(self.control, self.level_label)

    def describe(self) -> str:
        ci = f" [{self.ci_low:.4g}, {self.ci_high:.4g}]" if self.has_ci else ""
        value = f"{self.value:.4g}" if _finite(self.value) else "no value"
        return f"{self.name} {value}{ci}"


def set_name(control: str, level_label: str) -> str:
    """How a reason names a set: its control and level label ("blur sigma=0.008*side"), or the control alone where
    the label only repeats it (a control's own set, e.g. "original")."""
    return control if level_label.strip() in ("", control) else f"{control} {level_label}"


@dataclass(frozen=True)
class Judgement:
    verdict: str
    statistic: float | None  # Spearman rho over the levels, or the margin of a comparison
    statistic_name: str
    reason: str


def _finite(x) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


KINDS: dict[str, Callable[[list[Point], dict], Judgement]] = {}


def kind(name: str):
    def register(f):
        KINDS[name] = f
        return f

    return register


def _missing(points: list[Point], statistic_name: str) -> Judgement | None:
    """`underpowered` naming the first point without a value (with its note), else None."""
    for p in points:
        if not _finite(p.value):
            why = f": {p.note}" if p.note else ""
            return Judgement(UNDERPOWERED, None, statistic_name, f"no value at {p.name}{why}")
    return None


def _rho(points: list[Point]) -> float:
    levels = [p.level for p in points]
    values = [p.value for p in points]
    if len(set(values)) == 1:
        return 0.0
    return float(spearmanr(levels, values).statistic)


def _monotone(points: list[Point], sign: int) -> Judgement:
    """sign +1: strictly increasing with the level; -1: strictly decreasing."""
    name = "spearman_rho"
    if len(points) < 2:
        return Judgement(UNDERPOWERED, None, name, "fewer than two levels")
    missing = _missing(points, name)
    if missing:
        return missing
    rho = _rho(points)
    word = "increase" if sign > 0 else "decrease"
    if rho * sign < 1 - 1e-12:
        bad = next((a, b) for a, b in zip(points, points[1:], strict=False) if (b.value - a.value) * sign <= 0)
        return Judgement(
            FAIL, rho, name, f"Spearman rho {rho:.3g}: {bad[0].describe()} -> {bad[1].describe()} does not {word}"
        )
    for a, b in zip(points, points[1:], strict=False):
        if not (a.has_ci and b.has_ci):
            return Judgement(UNDERPOWERED, rho, name, f"rho = {sign}, but no CI at {(b if a.has_ci else a).describe()}")
        separated = b.ci_low > a.ci_high if sign > 0 else b.ci_high < a.ci_low
        if not separated:
            return Judgement(
                UNDERPOWERED, rho, name, f"rho = {sign}, but the CIs of {a.describe()} and {b.describe()} overlap"
            )
    return Judgement(PASS, rho, name, f"rho = {sign} and every adjacent pair of levels separated beyond their CIs")


@kind("monotone_increasing")
def monotone_increasing(points: list[Point], params: dict) -> Judgement:
    """Spearman rho = 1 over the levels and every adjacent pair separated beyond their CIs."""
    return _monotone(points, +1)


@kind("monotone_decreasing")
def monotone_decreasing(points: list[Point], params: dict) -> Judgement:
    """Spearman rho = -1 over the levels and every adjacent pair separated beyond their CIs."""
    return _monotone(points, -1)


def _overall(points: list[Point], sign: int) -> Judgement:
    """sign -1 (falls): the last level below the first beyond their CIs, and no step up beyond the CIs of two
    adjacent levels (a metric bounded at 0 or 1 may stay there: equal values are allowed)."""
    name = "spearman_rho"
    if len(points) < 2:
        return Judgement(UNDERPOWERED, None, name, "fewer than two levels")
    missing = _missing(points, name)
    if missing:
        return missing
    rho = _rho(points)
    word = "falls" if sign < 0 else "rises"
    for a, b in zip(points, points[1:], strict=False):
        against = b.ci_low > a.ci_high if sign < 0 else b.ci_high < a.ci_low
        if a.has_ci and b.has_ci and against:
            return Judgement(
                FAIL, rho, name, f"moves against the expectation beyond the CIs: {a.describe()} -> {b.describe()}"
            )
    first, last = points[0], points[-1]
    if (last.value - first.value) * sign <= 0:
        return Judgement(FAIL, rho, name, f"does not {word.removesuffix('s')}: {first.describe()} -> {last.describe()}")
    if not (first.has_ci and last.has_ci):
        return Judgement(UNDERPOWERED, rho, name, f"{word}, but without CIs to show it")
    if not (last.ci_high < first.ci_low if sign < 0 else last.ci_low > first.ci_high):
        return Judgement(
            UNDERPOWERED, rho, name, f"{word}, but the CIs of {first.describe()} and {last.describe()} overlap"
        )
    return Judgement(PASS, rho, name, f"{word} from the first to the last level beyond their CIs, never against it")


@kind("falls")
def falls(points: list[Point], params: dict) -> Judgement:
    """The strongest level lower than level 0 beyond their CIs, no adjacent step up beyond the CIs."""
    return _overall(points, -1)


@kind("rises")
def rises(points: list[Point], params: dict) -> Judgement:
    """The strongest level higher than level 0 beyond their CIs, no adjacent step down beyond the CIs."""
    return _overall(points, +1)


def _of(points: list[Point], control: str) -> Point:
    found = [p for p in points if p.control == control]
    if len(found) != 1:
        raise ValueError(f"expected one set of control {control!r}, found {len(found)}")
    return found[0]


@kind("greater")
def greater(points: list[Point], params: dict) -> Judgement:
    """params high, low (controls): high's value above low's, beyond their CIs."""
    name = "difference"
    high, low = _of(points, params["high"]), _of(points, params["low"])
    missing = _missing([high, low], name)
    if missing:
        return missing
    diff = high.value - low.value
    if diff <= 0:
        return Judgement(FAIL, diff, name, f"{high.describe()} is not above {low.describe()}")
    if not (high.has_ci and low.has_ci):
        return Judgement(UNDERPOWERED, diff, name, "above, but without CIs to show it")
    if high.ci_low <= low.ci_high:
        return Judgement(
            UNDERPOWERED, diff, name, f"above, but the CIs of {high.describe()} and {low.describe()} overlap"
        )
    return Judgement(PASS, diff, name, f"{high.describe()} above {low.describe()} beyond their CIs")


@kind("maximal_at")
def maximal_at(points: list[Point], params: dict) -> Judgement:
    """params control, over (controls; default every other): the control's value above each of theirs, beyond the
    CIs."""
    name = "margin"
    top = _of(points, params["control"])
    others = [p for p in points if p.control != top.control and p.control in params.get("over", [p.control])]
    missing = _missing([top, *others], name)
    if missing:
        return missing
    margin = top.value - max(p.value for p in others)
    beaten = [p for p in others if p.value >= top.value]
    if beaten:
        return Judgement(FAIL, margin, name, f"{beaten[0].describe()} is not below {top.describe()}")
    if not top.has_ci or not all(p.has_ci for p in others):
        return Judgement(UNDERPOWERED, margin, name, "highest, but without CIs to show it")
    close = [p for p in others if p.ci_high >= top.ci_low]
    if close:
        return Judgement(
            UNDERPOWERED, margin, name, f"highest, but the CIs of {top.describe()} and {close[0].describe()} overlap"
        )
    return Judgement(PASS, margin, name, f"{top.describe()} above every other control beyond the CIs")


def _expected_rate(point: Point, nominal: float) -> float:
    """A planted share p (the point's level) caught in full, the rest flagged at the nominal false-positive rate."""
    return point.level + (1 - point.level) * nominal


def _rate_points(points: list[Point], name: str) -> Judgement | None:
    missing = _missing(points, name)
    if missing:
        return missing
    bare = [p for p in points if not p.has_ci]
    if bare:
        return Judgement(UNDERPOWERED, None, name, f"no CI at {bare[0].describe()}")
    return None


@kind("within_wilson")
def within_wilson(points: list[Point], params: dict) -> Judgement:
    """params nominal: at every level p, the CI (Wilson) holds p + (1 - p) * nominal."""
    name = "max_deviation"
    problem = _rate_points(points, name)
    if problem:
        return problem
    nominal = float(params["nominal"])
    deviation = max(abs(p.value - _expected_rate(p, nominal)) for p in points)
    for p in points:
        expected = _expected_rate(p, nominal)
        if not p.ci_low <= expected <= p.ci_high:
            return Judgement(FAIL, deviation, name, f"{p.describe()} leaves out the expected {expected:.4g}")
    return Judgement(PASS, deviation, name, f"every level's CI holds p + (1 - p) x {nominal:g}")


@kind("at_most_wilson")
def at_most_wilson(points: list[Point], params: dict) -> Judgement:
    """params nominal: at no level p does the CI lie above p + (1 - p) * nominal (never more than the planted share
    plus the nominal rate; fewer is allowed)."""
    name = "max_excess"
    problem = _rate_points(points, name)
    if problem:
        return problem
    nominal = float(params["nominal"])
    excess = max(p.value - _expected_rate(p, nominal) for p in points)
    for p in points:
        expected = _expected_rate(p, nominal)
        if p.ci_low > expected:
            return Judgement(FAIL, excess, name, f"{p.describe()} lies above the most expected, {expected:.4g}")
    return Judgement(PASS, excess, name, f"no level's CI lies above p + (1 - p) x {nominal:g}")


@kind("all_equal")
def all_equal(points: list[Point], params: dict) -> Judgement:
    """params value: every point's value equals it (e.g. every copy's source at rank 1: a share of 1)."""
    name = "min_value"
    missing = _missing(points, name)
    if missing:
        return missing
    target = float(params["value"])
    off = [p for p in points if abs(p.value - target) > 1e-12]
    low = min(p.value for p in points)
    if off:
        return Judgement(FAIL, low, name, f"{off[0].describe()} is not {target:g}")
    return Judgement(PASS, low, name, f"every point is {target:g}")


@kind("approx_equal")
def approx_equal(points: list[Point], params: dict) -> Judgement:
    """params control, value: that control's CI holds the value."""
    name = "difference"
    point = _of(points, params["control"])
    problem = _rate_points([point], name)
    if problem:
        return problem
    target = float(params["value"])
    if not point.ci_low <= target <= point.ci_high:
        return Judgement(FAIL, point.value - target, name, f"{point.describe()} leaves out {target:g}")
    return Judgement(PASS, point.value - target, name, f"{point.describe()} holds {target:g}")


@kind("ordered")
def ordered(points: list[Point], params: dict) -> Judgement:
    """params order (controls, highest first), strict (one flag per adjacent pair, default all true): a strict pair
    must be higher beyond the CIs (inside them: underpowered); a non-strict pair (>=) fails only when the lower one
    lies above beyond the CIs."""
    name = "min_margin"
    chain = [_of(points, c) for c in params["order"]]
    strict = list(params.get("strict", [True] * (len(chain) - 1)))
    if len(strict) != len(chain) - 1:
        raise ValueError(f"ordered: {len(chain) - 1} adjacent pairs but {len(strict)} strict flags")
    missing = _missing(chain, name)
    if missing:
        return missing
    margin = min(a.value - b.value for a, b in zip(chain, chain[1:], strict=False))
    weak = None
    for (a, b), must in zip(zip(chain, chain[1:], strict=False), strict, strict=True):
        if must and a.value <= b.value:
            return Judgement(FAIL, margin, name, f"{a.describe()} is not above {b.describe()}")
        if not must and a.has_ci and b.has_ci and b.ci_low > a.ci_high:
            return Judgement(FAIL, margin, name, f"{b.describe()} lies above {a.describe()} beyond their CIs")
        if must and weak is None and not (a.has_ci and b.has_ci and a.ci_low > b.ci_high):
            weak = f"the CIs of {a.describe()} and {b.describe()} overlap (or are missing)"
    if weak:
        return Judgement(UNDERPOWERED, margin, name, f"in order, but {weak}")
    return Judgement(PASS, margin, name, "in order, every strict step beyond the CIs")
