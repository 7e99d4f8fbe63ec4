"""KID / KD: unbiased polynomial-kernel MMD² over seeded subsets (fused into the P/R/D/C pass on its extractor)."""

from __future__ import annotations

from . import bootstrap
from . import kid as kid_lib
from .manifold import compute_prdc_kid, pass_tiles
from .registry import Context, Metric, Row, suffix

LEADERBOARD_NAMES = {"dinov2": "KD_DINOv2"}  # dgm-eval's name for KID on DINOv2 features
# the CI's kernel matrices (real², synthetic², real x synthetic, float64): at most this many elements (800 MB)
CI_MAX_ELEMENTS = 10**8


def fused_pass(ctx: Context):
    """P/R/D/C and KID's kernel sums in one pass over the distance tiles (same subsets as the standalone KID), for the
    P/R/D/C extractor; None where it does not apply."""
    s = ctx.settings
    if ctx.extractor not in s.prdc_extractors or min(len(ctx.ri), len(ctx.si)) <= max(s.k, 1):
        return None

    def run():
        tiles = pass_tiles(len(ctx.ri), len(ctx.si), s.tile)
        desc = f"P/R/D/C + KID {ctx.extractor}/{ctx.group.name}"
        with ctx.evaluator.progress(tiles, desc, "tiles") as progress:
            return compute_prdc_kid(
                ctx.x_real,
                ctx.x_synth,
                s.k,
                tile=s.tile,
                subsets=s.kid_subsets,
                subset_size=s.kid_subset_size,
                seed=s.seed,
                on_tile_done=progress.update,
            )

    return ctx.once("prdc_kid", run)


def compute(ctx: Context) -> list[Row]:
    s, name, n = ctx.settings, ctx.extractor, ctx.n
    x_real, x_synth = ctx.x_real, ctx.x_synth
    if min(len(x_real), len(x_synth)) < 2:
        return ctx.unavailable(("KID", "KID_std"), "fewer samples than KID needs (2 per set)")
    fused = fused_pass(ctx)
    if fused is not None:
        kid = fused[1]
    else:
        kid = kid_lib.kernel_inception_distance(
            x_real, x_synth, subsets=s.kid_subsets, subset_size=s.kid_subset_size, seed=s.seed
        )
    note = [f"{s.kid_subsets} subsets of {kid.subset_size}"]
    if kid.subset_size < s.kid_subset_size:
        note.append(f"subset size {kid.subset_size} < {s.kid_subset_size} (group smaller than a subset)")
    std, std_note = kid.std, list(note)
    if max(len(x_real), len(x_synth)) <= s.kid_subset_size:  # every subset is the whole of both sets
        std = None
        std_note.append(
            f"KID std unavailable: both sets ({len(x_real)} real, {len(x_synth)} synthetic) fit in one subset of "
            f"{s.kid_subset_size}, so every subset is the whole set and the spread measures nothing"
        )
    row = Row("KID", ctx.group.name, name, kid.mean, **n, notes=list(note))
    _confidence_interval(row, ctx)
    return [row, Row("KID_std", ctx.group.name, name, std, **n, notes=std_note)]


def _confidence_interval(row: Row, ctx: Context) -> None:
    """With --bootstrap: prompt-bootstrap replicates of the whole sets' unbiased MMD², centred on KID."""
    elements = (len(ctx.x_real) + len(ctx.x_synth)) ** 2
    if ctx.settings.bootstrap and elements > CI_MAX_ELEMENTS:
        row.notes.append(
            f"KID CI unavailable: its kernel matrices would hold {elements:.3g} values (at most {CI_MAX_ELEMENTS:.0e})"
        )
        return
    ctx.evaluator.bootstrap_ci(row, ctx, bootstrap.kid_replicates)


def column(row: Row, primary: str | None) -> str:
    base = LEADERBOARD_NAMES.get(row.extractor, "KID" + suffix(row.extractor))
    return base + (" std" if row.metric == "KID_std" else "")


METRIC = Metric(
    name="kid",
    outputs=("KID", "KID_std"),
    features="every embedding extractor (DINOv2: KD_DINOv2)",
    ci="prompt bootstrap of the whole sets' unbiased MMD² (weighted kernel matrices), centred percentile; KID_std: "
    "spread over 100 seeded subsets of 1000 (ddof 0), not a CI",
    reference="torchmetrics KID on the same subsets, pair-by-pair unbiased MMD²",
    measures="unbiased MMD² with the cubic polynomial kernel (xᵀy/d + 1)³",
    compute=compute,
    column=column,
    lower_is_better=True,
)
