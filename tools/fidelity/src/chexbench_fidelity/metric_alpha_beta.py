"""α-precision / β-recall (Alaa et al. 2022, embedding space) on the P/R/D/C extractor, with per-image levels."""

from __future__ import annotations

import pandas as pd

from .alpha_beta import STEPS, alpha_beta
from .groups import ALL
from .registry import Context, Metric, Row, suffix

ALPHA_BETA_METRICS = ("alpha_precision", "beta_recall")
COLUMNS = {"alpha_precision": "alpha-Precision", "beta_recall": "beta-Recall"}


def compute(ctx: Context) -> list[Row]:
    name, n, ri, si = ctx.extractor, ctx.n, ctx.ri, ctx.si
    if len(ri) < 2 or len(si) < 1:
        return ctx.unavailable(ALPHA_BETA_METRICS, "α-precision/β-recall need at least 2 real and 1 synthetic image")
    result = alpha_beta(ctx.x_real, ctx.x_synth)
    note = f"Alaa et al. 2022, embedding space (no one-class net), centre = real mean, {STEPS} α steps; 1 = ideal"
    if ctx.group.name == ALL:
        real, synth = ctx.real, ctx.synth
        ctx.evaluator.per_image += [
            pd.DataFrame(
                {
                    "extractor": name,
                    "set": "synthetic",
                    "image_id": synth.ids[si],
                    "alpha_level": result.synth_alpha_level,
                }
            ),
            pd.DataFrame(
                {
                    "extractor": name,
                    "set": "real",
                    "image_id": real.ids[ri],
                    "covered": result.real_covered,
                    "nearest_synthetic": synth.ids[si][result.real_nn_synth],
                }
            ),
        ]
    return [
        Row("alpha_precision", ctx.group.name, name, result.alpha_precision, **n, notes=[note]),
        Row("beta_recall", ctx.group.name, name, result.beta_recall, **n, notes=[note]),
    ]


METRIC = Metric(
    name="alpha_beta",
    outputs=ALPHA_BETA_METRICS,
    features="the P/R/D/C extractor",
    ci="none",
    reference="synthcity 0.2.12 AlphaPrecision (naive variant) on the same features",
    measures="how typical synthetic images are of the real support (α) and how much of it they cover (β); 1 = ideal",
    compute=compute,
    column=lambda row, primary: COLUMNS[row.metric] + suffix(row.extractor),
    applies=lambda ctx: ctx.extractor in ctx.settings.prdc_extractors,
    lower_is_better=False,
)
