"""Diversity: the Vendi score of the synthetic set, of the real set (the ceiling), and per prompt."""

from __future__ import annotations

import numpy as np

from . import bootstrap
from .groups import ALL
from .registry import Context, Metric, Row, suffix
from .vendi import per_group_vendi, vendi_score

VENDI_METRICS = ("vendi", "vendi_real", "vendi_per_prompt")
COLUMNS = {"vendi": "Vendi", "vendi_real": "Vendi real", "vendi_per_prompt": "Vendi per prompt"}


def _side_replicates(side: str):
    def replicates(x_real, x_synth, units, reps, seed, tick):
        x = x_real if side == "real" else x_synth
        return bootstrap.replicates(
            units, reps, seed, tick, lambda w_real, w_synth: vendi_score(x, w_real if side == "real" else w_synth)
        )

    return replicates


def _per_prompt(ctx: Context) -> Row:
    name, n, s = ctx.extractor, ctx.n, ctx.settings
    source = "the --synth images"
    if name in ctx.evaluator.prompt_samples:
        if ctx.group.name != ALL:
            note = "the --prompt-samples carry no labels here: per-prompt Vendi of subset all only"
            return ctx.unavailable(("vendi_per_prompt",), note)[0]
        table, prompts = ctx.evaluator.prompt_samples[name]
        x, n, source = table.vectors, {"n_real": None, "n_synth": len(table.vectors)}, f"--prompt-samples {table.path}"
    elif ctx.evaluator.catalogue.paired:
        x, prompts = ctx.x_synth, ctx.evaluator.catalogue.unit(ctx.synth)[ctx.si]
    else:
        return ctx.unavailable(("vendi_per_prompt",), "needs --images (the prompt of every synthetic image)")[0]
    _, sizes, scores = per_group_vendi(x, prompts)
    if len(scores) == 0:
        note = f"no prompt has 2 or more images in {source} (give the privacy chain's 10 per prompt: --prompt-samples)"
        return ctx.unavailable(("vendi_per_prompt",), note)[0]
    low, high = int(sizes.min()), int(sizes.max())
    per = f"{low}" if low == high else f"{low}-{high}"
    row = Row(
        "vendi_per_prompt",
        ctx.group.name,
        name,
        float(scores.mean()),
        **n,
        notes=[
            f"mean over {len(scores)} prompts of the Vendi score of their {per} generations (1 = all alike); {source}"
        ],
    )
    if s.bootstrap and len(scores) >= 2:
        rng = np.random.default_rng(s.seed)
        reps = np.array([scores[rng.integers(0, len(scores), len(scores))].mean() for _ in range(s.bootstrap)])
        row.ci_low, row.ci_high = bootstrap.centred_interval(row.value, reps, s.ci_level, (1.0, float(high)))
        row.notes.append(f"{int(s.ci_level * 100)}% CI: {s.bootstrap} bootstrap draws of the prompts")
    return row


def compute(ctx: Context) -> list[Row]:
    name, n, group = ctx.extractor, ctx.n, ctx.group.name
    ceiling = f"bounded by min(n, d) = {min(len(ctx.si), ctx.real.dim)}"
    synth = Row("vendi", group, name, vendi_score(ctx.x_synth), **n, notes=[f"synthetic set; {ceiling}"])
    real = Row("vendi_real", group, name, vendi_score(ctx.x_real), **n, notes=["real set: the ceiling"])
    for row, side in ((synth, "synth"), (real, "real")):
        ctx.evaluator.bootstrap_ci(row, ctx, _side_replicates(side), (1.0, np.inf))
    return [synth, real, _per_prompt(ctx)]


METRIC = Metric(
    name="vendi",
    outputs=VENDI_METRICS,
    features="every embedding extractor (cosine similarity of the features)",
    ci="prompt bootstrap (weighted similarity eigenvalues), centred percentile; per prompt: bootstrap of the prompts",
    reference="vendi-score 0.0.3 (score_X, score_dual) on the same features",
    measures="effective number of distinct images (exp of the entropy of the similarity spectrum); the real set's "
    "value is the ceiling; per prompt: the diversity of one prompt's generations (1 = mode collapse)",
    compute=compute,
    column=lambda row, primary: COLUMNS[row.metric] + suffix(row.extractor),
    lower_is_better=False,
)
