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


def markdown_table() -> str:
    """The README's metric table from the modules' declarations (`python -m chexbench_fidelity.metric_registry`)."""
    lines = ["| Metric (rows) | What it measures | Features | CI | Reference in the tests |", "|---|---|---|---|---|"]
    for m in REGISTRY:
        rows = ", ".join(f"`{o}`" for o in m.outputs)
        lines.append(f"| {m.name} ({rows}) | {m.measures} | {m.features} | {m.ci} | {m.reference} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
