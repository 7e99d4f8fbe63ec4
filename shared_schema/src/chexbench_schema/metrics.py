"""One row of the `metrics` table and the frame of a stage's rows. Every stage that writes a metrics table builds it
here, so a value or a bound that is not a number (None or NaN) is null the same way in every stage's table, and the
run's model, id and stage are written once per table, not per row."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields

import pandas as pd

from .tables import METRICS


@dataclass(frozen=True)
class MetricRow:
    """One metric value: what (metric, subset, extractor), the value and its confidence interval, the sample sizes,
    and a note (how it was computed, or why the value is unavailable)."""

    metric: str
    value: float | None
    subset: str = "all"
    extractor: str | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_real: int | None = None
    n_synth: int | None = None
    note: str | None = None


def metrics_frame(rows: Iterable[MetricRow], *, model: str, run_id: str, stage: str) -> pd.DataFrame:
    """The `metrics` table of one stage's rows, its columns in the contract's order; NaN values and bounds become
    null (a note says why), numbers become floats and sample sizes ints."""
    records = [
        {
            "run_id": run_id,
            "model": model,
            "stage": stage,
            **{f.name: _clean(f.name, getattr(row, f.name)) for f in fields(MetricRow)},
        }
        for row in rows
    ]
    return pd.DataFrame(records, columns=[c.name for c in METRICS.columns])


def _clean(name: str, value):
    if name in ("value", "ci_low", "ci_high"):
        return None if value is None or math.isnan(value) else float(value)
    if name in ("n_real", "n_synth"):
        return None if value is None else int(value)
    return value
