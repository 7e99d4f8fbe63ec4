"""The metric contract: what one metric module declares, and the context it computes from.

A metric is one module (`metric_*.py`) exposing `METRIC`, a `Metric`: its name, the features it needs, the rows it
writes (the `metrics` table's metric names), how its confidence interval is computed, the reference it is tested
against, when it applies, how it computes, and its leaderboard column names. `metric_registry.REGISTRY` lists them in
output order; the evaluator, the leaderboard and the README table read nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from chexbench_common.errors import BadInputError
from chexbench_schema.metrics import MetricRow

if TYPE_CHECKING:
    from .evaluate import Evaluator
    from .groups import Group
    from .inputs import FeatureSet
    from .settings import Settings

UNBOUNDED = (-np.inf, np.inf)
RADIOMICS = "radiomics"  # the extractor whose features get FRD instead of the embedding metrics
SUFFIX = {"inception": "", "raddino": " (RadDino)", "dinov2": " (DINOv2)", "clip": " (CLIP)"}


def suffix(extractor: str | None) -> str:
    """The leaderboard suffix of an extractor's columns (Inception: none, as in the original)."""
    return SUFFIX.get(extractor or "", f" ({extractor})")


class Shortfall(BadInputError):
    """Fewer samples than a metric needs (an error for `all` or a requested pathology, a note otherwise)."""


@dataclass
class Row:
    metric: str
    subset: str
    extractor: str | None
    value: float | None
    n_real: int | None = None
    n_synth: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        return "; ".join(self.notes) or None

    def as_metric(self) -> MetricRow:
        """This row as the contract's row of the `metrics` table."""
        return MetricRow(
            self.metric,
            self.value,
            self.subset,
            self.extractor,
            self.ci_low,
            self.ci_high,
            self.n_real,
            self.n_synth,
            self.note,
        )


@dataclass
class Context:
    """One (group, extractor) pair, or one group for run-wide metrics (real/synth None), with shared results."""

    evaluator: Evaluator
    group: Group
    strict: bool
    real: FeatureSet | None = None
    synth: FeatureSet | None = None
    ri: np.ndarray | None = None
    si: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)
    shared: dict = field(default_factory=dict)  # results several metrics use (the fused P/R/D/C + KID pass)

    @property
    def settings(self) -> Settings:
        return self.evaluator.settings

    @property
    def extractor(self) -> str | None:
        return None if self.real is None else self.real.extractor

    @property
    def n(self) -> dict:
        return {"n_real": len(self.ri), "n_synth": len(self.si)}

    @property
    def x_real(self) -> np.ndarray:
        return self.real.vectors[self.ri]

    @property
    def x_synth(self) -> np.ndarray:
        return self.synth.vectors[self.si]

    @property
    def empty(self) -> bool:
        return self.ri is not None and (len(self.ri) == 0 or len(self.si) == 0)

    def unavailable(self, metrics, *notes: str) -> list[Row]:
        """Rows without a value for each of `metrics`, with the reason."""
        return [Row(m, self.group.name, self.extractor, None, **self.n, notes=list(notes)) for m in metrics]

    def once(self, key: str, compute: Callable):
        """A result shared by several metrics of this pair, computed by the first that asks."""
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]


@dataclass(frozen=True)
class Metric:
    """One metric module's declaration."""

    name: str
    outputs: tuple[str, ...]  # the metric names of its rows in the `metrics` table
    features: str  # which features it needs (README)
    ci: str  # how its CI (or spread) is computed (README)
    reference: str  # what it equals in the tests (README)
    measures: str  # what it measures (README)
    compute: Callable[[Context], list[Row]]
    column: Callable[[Row, str | None], str | None]  # leaderboard column of a row (primary P/R/D/C extractor given)
    applies: Callable[[Context], bool] = lambda ctx: ctx.extractor not in (None, RADIOMICS)
    run_wide: bool = False  # once per group, not per extractor (IS from logits)
    outputs_for: Callable[[Context], tuple[str, ...]] | None = None  # the rows it writes here, when not `outputs`
    lower_is_better: bool | None = None  # for ranking; None: no direction

    def rows_expected(self, ctx: Context) -> tuple[str, ...]:
        return self.outputs_for(ctx) if self.outputs_for else self.outputs


def with_suffix(name: str) -> Callable[[Row, str | None], str]:
    """The column `name` + the extractor's suffix, e.g. KID, KID (RadDino)."""
    return lambda row, primary: name + suffix(row.extractor)
