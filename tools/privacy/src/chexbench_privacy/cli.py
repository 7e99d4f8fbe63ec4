"""chexbench-privacy: thin Click layer over sample.py and run.py."""

from __future__ import annotations

import click
from chexbench_common.cli import stage_group
from chexbench_common.options import (
    DIR,
    FILE,
    KEEP_DEFAULT,
    builds_request,
    echo_outputs,
    folder_name,
    stage_run_options,
)

from . import __version__
from .provenance import parse_declarations
from .settings import Settings

main = stage_group(
    "privacy", __version__, "Patient re-identification, memorisation and a calibrated nearest-neighbour audit."
)

PREPROCESSING = click.Choice(["chexgenbench", "packhaeuser"])


@main.command()
@stage_run_options(device=False)
@click.option("--prompts", type=FILE, required=True, help="The TRAIN prompts table to sample from.")
@click.option("--real-root", type=DIR, required=True, help="Folder the prompts' image_path values are relative to.")
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=2000, help="Prompts to sample.")
@click.option(
    "--controls",
    type=click.IntRange(min=1),
    default=200,
    help="Training images copied at every strength of the control ladder (exact, mild, moderate, strong).",
)
@click.option("--size", type=click.IntRange(min=16), default=512, help="Side of the control copies (the generator's).")
@click.option("--seed", default=42, help="Seed of the draws and the augmentations.")
@builds_request(".sample:SampleRequest")
def sample(request):
    """Sample training prompts (then generate 10 images each) and write the positive-control ladder."""
    from .sample import run_sample

    echo_outputs(*run_sample(request))


@main.command()
@stage_run_options(device=True)
@click.option("--train-prompts", type=FILE, required=True, help="prompts table of the whole training pool (TRAIN).")
@click.option("--holdout-prompts", type=FILE, required=True, help="prompts table of a patient-disjoint real holdout.")
@click.option("--real-root", type=DIR, required=True, help="Folder both prompts tables' image_path are relative to.")
@click.option("--reid-weights", type=FILE, required=True, help="Re-ID Siamese checkpoint (plain state_dict .pth).")
@click.option(
    "--reid-preprocessing",
    type=PREPROCESSING,
    default=Settings.reid_preprocessing,
    help="chexgenbench: 224 px, no normalisation; packhaeuser: 256 px + ImageNet normalisation.",
)
@click.option(
    "--chain-run", callback=folder_name, help="Run id of the chain's generate/embed [default: <run-id>.privacy]."
)
@click.option("--sample-dir", type=DIR, help="Output of `privacy sample` [default: <run>/privacy-sample].")
@click.option("--images", type=FILE, help="images table of the generations [default: <chain>/generate/images.parquet].")
@click.option(
    "--images-root", type=DIR, help="Folder the images table's paths are relative to [default: its metadata]."
)
@click.option(
    "--synth-embeddings", type=FILE, multiple=True, help="Embeddings of the generations (repeat) [<chain>/embed]."
)
@click.option("--train-embeddings", type=FILE, multiple=True, help="Embeddings of the training pool (repeat).")
@click.option(
    "--holdout-embeddings", type=FILE, multiple=True, help="Embeddings of the holdout (repeat) [<run>/embed]."
)
@click.option(
    "--control-embeddings", type=FILE, multiple=True, help="Embeddings of the controls [<chain>-control/embed]."
)
@click.option(
    "--extractor",
    "extractors",
    multiple=True,
    default=("raddino",),
    show_default=True,
    help="An embedding space to audit in (repeat: inception, raddino, dinov2); the first is the protocol's latent "
    "distance. Tables given above are routed by the extractor their metadata names.",
)
@click.option(
    "--weights",
    "weights",
    multiple=True,
    help="NAME=real or NAME=stand-in (repeat; NAME: an extractor or reid): declare where a space's weights come "
    "from when neither a pinned sha256 nor the network's shape says it.",
)
@click.option("-k", "--top-k", type=click.IntRange(min=2), default=Settings.top_k, help="Nearest training images kept.")
@click.option(
    "--delta", type=click.FloatRange(0, 1), default=Settings.delta, help="CheXGenBench's re-ID count threshold."
)
@click.option("--dcr-quantile", type=click.FloatRange(0, 1), default=Settings.dcr_quantile, help="DCR flag quantile.")
@click.option("--nndr-max", type=click.FloatRange(0, 1), default=Settings.nndr_max, help="NNDR flag: d1/d2 below this.")
@click.option(
    "--reid-quantile", type=click.FloatRange(0, 1), default=Settings.reid_quantile, help="re-ID flag quantile."
)
@click.option(
    "--pixel-size", type=click.IntRange(min=8), default=Settings.pixel_size, help="Pixel-distance resolution."
)
@click.option(
    "--bootstrap", type=click.IntRange(min=0), default=Settings.bootstrap, help="Prompt-bootstrap replicates."
)
@click.option("--ci-level", type=click.FloatRange(0.5, 0.999), default=Settings.ci_level, help="Confidence level.")
@click.option(
    "--reid-spread-floor",
    type=click.FloatRange(0, 1),
    default=Settings.reid_spread_floor,
    show_default=True,
    help="re-ID is not informative (flags nothing) when its best scores on the holdout have a smaller sd.",
)
@click.option(
    "--space-spread-floor",
    type=click.FloatRange(0, 1),
    default=Settings.space_spread_floor,
    show_default=True,
    help="An embedding space is not informative (flags nothing) when the sd of the holdout's DCR, relative to the "
    "training vectors' RMS magnitude, is smaller.",
)
@click.option("--seed", default=Settings.seed, help="Seed of the bootstrap and the holdout folds.")
@click.option("--evidence-pairs", type=click.IntRange(min=1), default=Settings.evidence_pairs, help="Pairs shown.")
@click.option("--tile", type=click.IntRange(min=64), default=Settings.tile, help="Query batch / self-search tile edge.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Images per re-ID forward pass.")
@click.option("--workers", type=click.IntRange(min=0), help="Decoding processes [default: min(8, CPUs)].")
@click.option("--cache-dir", type=DIR, help="Re-ID embedding cache [default: $CHEXBENCH_CACHE_DIR/privacy].")
@builds_request(
    ".run:Request",
    extractors=lambda extractors: list(dict.fromkeys(extractors)),
    weights=lambda weights: parse_declarations(weights),
    tables=KEEP_DEFAULT,
)
def run(request):
    """Score the generations against the training set; writes the per-prompt CSV, the audit and metrics."""
    from .run import run as run_stage

    echo_outputs(*run_stage(request))


@main.command("tiny-reid")
@click.argument("out", type=FILE)
@click.option("--seed", default=0, help="Seed of the random weights.")
@click.option("--base-width", type=click.IntRange(min=1), default=8, help="ResNet base width (64 = the real size).")
def tiny_reid(out, seed, base_width):
    """Write a random-weight re-ID checkpoint in the published key layout (tests and the demo)."""
    from .reid import build_tiny_reid

    click.echo(build_tiny_reid(out, seed=seed, base_width=base_width))
