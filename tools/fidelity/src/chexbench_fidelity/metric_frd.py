"""FRD: ln FD of z-scored radiomics features (frd.py), on `radiomics` tables only."""

from __future__ import annotations

from . import bootstrap
from .frd import frechet_radiomics_distance
from .registry import RADIOMICS, Context, Metric, Row


def compute(ctx: Context) -> list[Row]:
    n, ri, si = ctx.n, ctx.ri, ctx.si
    if ctx.problems:
        return ctx.unavailable(("FRD",), *ctx.problems)
    try:
        value, used, note = frechet_radiomics_distance(ctx.x_real, ctx.x_synth)
    except ValueError as exc:
        return ctx.unavailable(("FRD",), str(exc))
    row = Row("FRD", ctx.group.name, RADIOMICS, value, **n, notes=[f"{used} features"] + ([note] if note else []))
    if min(len(ri), len(si)) < used:
        row.notes.append(f"unstable: n < d (n_real={len(ri)}, n_synth={len(si)}, d={used})")
    ctx.evaluator.bootstrap_ci(row, ctx, bootstrap.frd_replicates)
    return [row]


METRIC = Metric(
    name="frd",
    outputs=("FRD",),
    features="radiomics tables only (pyradiomics, the FRD v1 recipe)",
    ci="prompt bootstrap (with replacement), centred percentile",
    reference="frd-score 1.0.1's distance code, a textbook numpy/scipy computation",
    measures="Fréchet radiomics distance: ln FD of radiomics features z-scored with the real set",
    compute=compute,
    column=lambda row, primary: "FRD",
    applies=lambda ctx: ctx.extractor == RADIOMICS,
    lower_is_better=True,
)
