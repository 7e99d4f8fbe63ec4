"""Inception Score from synthetic classifier logits (run-wide: one logits table, not per extractor)."""

from __future__ import annotations

from .inception_score import inception_score
from .registry import Context, Metric, Row, Shortfall

IS_METRICS = ("IS", "IS_std")


def compute(ctx: Context) -> list[Row]:
    ev, s, group = ctx.evaluator, ctx.settings, ctx.group
    if ev.logits is None:
        return [Row(m, group.name, "inception-logits", None, notes=[ev.logits_note or "no logits"]) for m in IS_METRICS]
    si = group.rows(ev.logits)
    n = {"n_real": None, "n_synth": len(si)}
    if len(si) < s.is_splits:
        message = f"fewer samples than the Inception Score needs ({s.is_splits} splits): {len(si)} synthetic"
        if ctx.strict:
            raise Shortfall(f"{message} ({ev.logits.path})")
        return [Row(m, group.name, ev.logits.extractor, None, **n, notes=[message]) for m in IS_METRICS]
    score = inception_score(ev.logits.vectors[si], splits=s.is_splits, seed=s.seed)
    note = [f"{s.is_splits} splits, std ddof 0"]
    return [
        Row("IS", group.name, ev.logits.extractor, score.mean, **n, notes=list(note)),
        Row("IS_std", group.name, ev.logits.extractor, score.std, **n, notes=list(note)),
    ]


METRIC = Metric(
    name="inception_score",
    outputs=IS_METRICS,
    features="synthetic Inception logits (1008-class FID state_dict), never pool features",
    ci="spread over 10 seeded splits (IS_std, ddof 0); not a CI",
    reference="torchmetrics InceptionScore, a KL-formula IS",
    measures="ImageNet-class confidence and diversity (kept for parity; close to meaningless for CXRs)",
    compute=compute,
    column=lambda row, primary: "Inception Score" + (" std" if row.metric == "IS_std" else ""),
    applies=lambda ctx: True,
    run_wide=True,
    lower_is_better=False,
)
