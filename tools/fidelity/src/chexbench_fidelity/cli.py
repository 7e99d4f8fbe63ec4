"""chexbench-fidelity: thin Click layer over run.py and leaderboard.collect."""

from __future__ import annotations

import click
from chexbench_common.cli import stage_group
from chexbench_common.options import (
    FILE,
    KEEP_DEFAULT,
    PATH,
    builds_request,
    echo_outputs,
    group,
    results_option,
    stage_run_options,
)

from . import __version__
from .settings import Settings

main = stage_group("fidelity", __version__, "FID, KID, IS, precision/recall/density/coverage from embeddings tables.")


@main.command()
@stage_run_options(device=False)
@click.option(
    "--real",
    "real",
    type=FILE,
    multiple=True,
    help="Real embeddings table (repeat, one per extractor) [default: <run>/embed/real-*.parquet].",
)
@click.option(
    "--synth",
    "synth",
    type=FILE,
    multiple=True,
    help="Synthetic embeddings table (repeat) [default: <run>/embed/synthetic-*.parquet].",
)
@click.option(
    "--synth-logits",
    type=FILE,
    help="Synthetic classifier logits (embeddings table, extractor "
    "inception-logits) for the Inception Score; IS is reported unavailable without it.",
)
@click.option("--prompts", type=FILE, help="prompts table: labels of the real images (conditional mode).")
@click.option(
    "--images",
    type=FILE,
    help="images table: the prompt of every synthetic image (conditional mode, prompt-paired bootstrap).",
)
@click.option("--conditional/--no-conditional", default=False, help="Also evaluate each CheXpert label group.")
@click.option("--unconditional/--no-unconditional", default=True, help="Evaluate the whole sets (subset `all`).")
@click.option(
    "--pathology",
    "pathologies",
    multiple=True,
    help="Only these labels in conditional mode (repeat); an empty requested group is an error.",
)
@click.option(
    "--prdc-extractor",
    "prdc_extractors",
    multiple=True,
    help="Extractor(s) for precision/recall/density/coverage [default: raddino, else dinov2, else inception].",
)
@click.option(
    "-k", "--nearest-k", "k", type=click.IntRange(min=1), default=Settings.k, help="k of the k-NN balls for P/R/D/C."
)
@click.option("--kid-subsets", type=click.IntRange(min=1), default=Settings.kid_subsets, help="KID: number of subsets.")
@click.option(
    "--kid-subset-size",
    type=click.IntRange(min=2),
    default=Settings.kid_subset_size,
    help="KID: subset size (capped at the set sizes).",
)
@click.option("--is-splits", type=click.IntRange(min=1), default=Settings.is_splits, help="Inception Score: splits.")
@click.option("--seed", default=Settings.seed, help="Seed of every random choice (KID subsets, IS shuffle, ...).")
@click.option("--equal-n/--no-equal-n", default=False, help="Subsample the larger set to the smaller one (seeded).")
@click.option("--fd-inf/--no-fd-inf", default=False, help="Also report FD-infinity (Chong & Forsyth).")
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=0,
    help="Replicates for confidence intervals (FID: prompt bootstrap; P/R/D/C: prompt half-samples); 0 = none.",
)
@click.option("--ci-level", default=0.95, type=click.FloatRange(0.5, 0.999), help="Confidence level of the CIs.")
@click.option(
    "--tile",
    type=click.IntRange(min=16),
    default=Settings.tile,
    help="Tile edge of the P/R/D/C distance blocks (memory ~ 12 x tile² B).",
)
@click.option("--extra-info", default="", help="Free text for the leaderboard's Extra Info column.")
@click.option(
    "--caption-type",
    default=None,
    help="The leaderboard's Caption Type column (the caption column the prompts came from) "
    "[default: the prompts table's caption_column metadata, else empty].",
)
@click.option(
    "--train",
    "train",
    type=FILE,
    multiple=True,
    help="Real embeddings of the generator's training images (repeat, one per extractor): the C_T data-copying test.",
)
@click.option(
    "--prompt-samples",
    "prompt_samples",
    type=FILE,
    multiple=True,
    help="Synthetic embeddings with several images per prompt (repeat, one per extractor; e.g. the privacy chain's "
    "10 per prompt): the per-prompt Vendi score [default: the --synth tables].",
)
@click.option("--prompt-samples-images", type=FILE, help="images table of --prompt-samples (the prompt of each).")
@click.option("--cache-dir", type=PATH, help="Real-statistics cache [default: $CHEXBENCH_CACHE_DIR/fidelity].")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the real-statistics cache.")
@builds_request(
    ".run:Request",
    settings=group(prdc_extractors=KEEP_DEFAULT),  # run() sets it: the request's, else the first extractor present
    use_cache=lambda no_cache: not no_cache,
)
def run(request):
    """Compute fidelity metrics of one run; writes metrics.parquet and leaderboard CSV(s)."""
    from .run import run as run_stage

    if request.pathologies and not request.conditional:
        raise click.UsageError("--pathology needs --conditional")
    if not (request.conditional or request.unconditional):
        raise click.UsageError("--no-unconditional needs --conditional")
    echo_outputs(*run_stage(request))


@main.command()
@results_option
@click.option("--out", type=FILE, required=True, help="Merged leaderboard CSV to write.")
@click.option("--conditional", is_flag=True, help="Merge the per-pathology leaderboards instead.")
def collect(results, out, conditional):
    """Merge the leaderboard CSVs of every finished run under RESULTS into one file."""
    from .leaderboard import collect as collect_runs

    path, count = collect_runs(results, out, conditional)
    click.echo(f"{path} ({count} run(s))")
