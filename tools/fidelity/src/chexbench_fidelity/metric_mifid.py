"""MiFID: FID penalised by how close the synthetic images come to the reference images (torchmetrics' rule)."""

from __future__ import annotations

import numpy as np

from . import bootstrap
from .mifid import EPS, mifid, nearest_cosine
from .registry import Context, Metric, Row, suffix

MIFID_METRICS = ("MiFID", "MiFID_distance")


def compute(ctx: Context) -> list[Row]:
    name, n, group = ctx.extractor, ctx.n, ctx.group.name
    x_real, x_synth = ctx.x_real, ctx.x_synth
    fid_rows = ctx.shared.get("FID")
    fid = (
        fid_rows.value
        if fid_rows is not None
        else bootstrap.weighted_fid(x_real, x_synth, np.ones(len(x_real), np.int64), np.ones(len(x_synth), np.int64))
    )
    if fid is None:
        return ctx.unavailable(MIFID_METRICS, "fewer samples than FID needs (2 per set)")
    try:
        near = nearest_cosine(x_real, x_synth)
    except ValueError as exc:
        return ctx.unavailable(MIFID_METRICS, str(exc))
    d = near.mean_distance()
    rule = f"mean minimal cosine distance {d:.4g} " + ("< " if d < EPS else ">= ") + f"eps {EPS}"
    rule += ": FID divided by it" if d < EPS else ": no penalty (MiFID = FID)"
    reference = "reference: the real set (as torchmetrics)"
    value = Row("MiFID", group, name, mifid(fid, d), **n, notes=[rule, reference])
    distance = Row(
        "MiFID_distance",
        group,
        name,
        d,
        **n,
        notes=["mean over real rows of 1 - |cos| to the nearest synthetic row", reference],
    )

    def value_replicates(x_r, x_s, units, reps, seed, tick):
        def statistic(w_real, w_synth):
            fid_w = bootstrap.weighted_fid(x_r, x_s, w_real, w_synth)
            return None if fid_w is None else mifid(fid_w, near.mean_distance(w_real, w_synth))

        return bootstrap.replicates(units, reps, seed, tick, statistic)

    def distance_replicates(x_r, x_s, units, reps, seed, tick):
        return bootstrap.replicates(units, reps, seed, tick, near.mean_distance)

    ctx.evaluator.bootstrap_ci(value, ctx, value_replicates, (0.0, np.inf))
    ctx.evaluator.bootstrap_ci(distance, ctx, distance_replicates, (0.0, 1.0))
    return [value, distance]


METRIC = Metric(
    name="mifid",
    outputs=MIFID_METRICS,
    features="every embedding extractor",
    ci="prompt bootstrap (FID and the nearest-synthetic distances of the draw), centred percentile",
    reference="torchmetrics MemorizationInformedFrechetInceptionDistance on the same features",
    measures="FID divided by the mean minimal cosine distance between real and synthetic features when that is "
    "below 0.1 (copies of the reference images make it large)",
    compute=compute,
    column=lambda row, primary: ("MiFID" if row.metric == "MiFID" else "MiFID distance") + suffix(row.extractor),
    lower_is_better=True,
)
