"""The C_T data-copying test against the training images (given with --train), held-out real set as reference."""

from __future__ import annotations

from .data_copying import MIN_SYNTH, data_copying_test
from .registry import Context, Metric, Row, suffix


def _train(ctx: Context):
    return ctx.evaluator.train.get(ctx.extractor)


def compute(ctx: Context) -> list[Row]:
    train = _train(ctx)
    try:
        result = data_copying_test(train.vectors, ctx.x_real, ctx.x_synth, seed=ctx.settings.seed)
    except ValueError as exc:
        return ctx.unavailable(("C_T",), str(exc))
    note = (
        f"Meehan et al. 2020: {len(result.used)} of {result.cells} k-means cells of {len(train.vectors)} training "
        f"images (cells with >= {MIN_SYNTH} synthetic images); z-score: below -3 = data copying, above 3 = farther "
        "from the training images than held-out real images"
    )
    return [Row("C_T", ctx.group.name, ctx.extractor, result.statistic, **ctx.n, notes=[note])]


METRIC = Metric(
    name="data_copying",
    outputs=("C_T",),
    features="every embedding extractor given with --train (the training images' embeddings)",
    ci="none: C_T is itself a z-score (beyond ±3 is significant)",
    reference="a direct Mann-Whitney pair count; planted copies (C_T < -3), a copy-free set (within ±3)",
    measures="whether synthetic images sit closer to their nearest training image than held-out real images do",
    compute=compute,
    column=lambda row, primary: "C_T" + suffix(row.extractor),
    applies=lambda ctx: ctx.extractor is not None and ctx.extractor in ctx.evaluator.train,
)
