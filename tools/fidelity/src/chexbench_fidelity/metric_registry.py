"""Every metric the fidelity stage computes, in output order: the one place a metric is registered."""

from __future__ import annotations

from . import (
    metric_alpha_beta,
    metric_cmmd,
    metric_data_copying,
    metric_fid,
    metric_frd,
    metric_inception_score,
    metric_kid,
    metric_mifid,
    metric_prdc,
    metric_vendi,
)
from .registry import Metric, Row

REGISTRY: tuple[Metric, ...] = (
    metric_fid.METRIC,
    metric_kid.METRIC,
    metric_prdc.METRIC,
    metric_alpha_beta.METRIC,
    metric_cmmd.METRIC,
    metric_vendi.METRIC,
    metric_mifid.METRIC,
    metric_data_copying.METRIC,
    metric_frd.METRIC,
    metric_inception_score.METRIC,
)
BY_OUTPUT = {output: metric for metric in REGISTRY for output in metric.outputs}


def leaderboard_column(row: Row, prdc_primary: str | None) -> str | None:
    """The leaderboard column of a metrics row (None: a metric no module declares)."""
    metric = BY_OUTPUT.get(row.metric)
    return None if metric is None else metric.column(row, prdc_primary)
