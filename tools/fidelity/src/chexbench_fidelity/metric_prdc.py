"""Precision / recall / density / coverage (Kynkäänniemi, Naeem) on the P/R/D/C extractor."""

from __future__ import annotations

import numpy as np

from . import bootstrap
from .manifold import compute_prdc
from .metric_kid import fused_pass
from .registry import Context, Metric, Row, suffix

PRDC_METRICS = ("precision", "recall", "density", "coverage")


def compute(ctx: Context) -> list[Row]:
    s, name, n = ctx.settings, ctx.extractor, ctx.n
    x_real, x_synth = ctx.x_real, ctx.x_synth
    if min(len(ctx.ri), len(ctx.si)) <= s.k:
        return ctx.unavailable(
            PRDC_METRICS, f"fewer samples than precision/recall/density/coverage need (more than k={s.k} per set)"
        )
    fused = fused_pass(ctx)
    result = (fused[0] if fused is not None else compute_prdc(x_real, x_synth, s.k, tile=s.tile)).as_dict()
    rows = [Row(m, ctx.group.name, name, result[m], **n, notes=[f"k={s.k}"]) for m in PRDC_METRICS]
    if s.bootstrap:
        units = ctx.evaluator.units(ctx)
        with ctx.evaluator.progress(s.bootstrap, f"P/R/D/C half-samples {name}/{ctx.group.name}") as progress:
            reps = bootstrap.prdc_replicates(x_real, x_synth, units, s.bootstrap, s.seed, s.k, s.tile, progress.update)
        for row in rows:
            if len(reps[row.metric]) >= 2:
                bounds = (0.0, np.inf if row.metric == "density" else 1.0)
                row.ci_low, row.ci_high = bootstrap.centred_interval(row.value, reps[row.metric], s.ci_level, bounds)
                row.notes.append(f"{int(s.ci_level * 100)}% CI: {len(reps[row.metric])} prompt half-samples")
    return rows


def column(row: Row, primary: str | None) -> str:
    return row.metric.capitalize() + ("" if row.extractor == primary else suffix(row.extractor))


METRIC = Metric(
    name="prdc",
    outputs=PRDC_METRICS,
    features="the P/R/D/C extractor (--prdc-extractor; default RAD-DINO, else DINOv2, else Inception)",
    ci="prompt half-samples without replacement, centred percentile",
    reference="the prdc package (identical values), float64 brute force on float32 traps",
    measures="share of synthetic images inside the real manifold (precision, density) and of real images covered "
    "(recall, coverage), k-NN balls with k = 5",
    compute=compute,
    column=column,
    applies=lambda ctx: ctx.extractor in ctx.settings.prdc_extractors,
    lower_is_better=False,
)
