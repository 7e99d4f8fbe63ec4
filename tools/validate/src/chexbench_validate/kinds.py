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

    def describe(self) -> str:
        ci = f" [{self.ci_low:.4g}, {self.ci_high:.4g}]" if self.has_ci else ""
        value = f"{self.value:.4g}" if _finite(self.value) else "no value"
        return f"{self.control} {self.level_label} {value}{ci}"


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
            return Judgement(UNDERPOWERED, None, statistic_name, f"no value at {p.control} {p.level_label}{why}")
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
