"""chexbench-privacy: thin Click layer over sample.py and run.py."""

from __future__ import annotations

from pathlib import Path

import click
from chexbench_common.cli import stage_group
from chexbench_common.options import echo_outputs, folder_name, stage_run_options

from . import __version__
from .settings import Settings

main = stage_group(
    "privacy", __version__, "Patient re-identification, memorisation and a calibrated nearest-neighbour audit."
)

_path = click.Path(path_type=Path)
_file = click.Path(path_type=Path, dir_okay=False)
_dir = click.Path(path_type=Path, file_okay=False)
PREPROCESSING = click.Choice(["chexgenbench", "packhaeuser"])


@main.command()
@stage_run_options(device=False)
@click.option("--prompts", type=_file, required=True, help="The TRAIN prompts table to sample from.")
@click.option("--real-root", type=_dir, required=True, help="Folder the prompts' image_path values are relative to.")
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=2000, help="Prompts to sample.")
@click.option(
    "--controls",
    type=click.IntRange(min=1),
    default=200,
    help="Training images copied at every strength of the control ladder (exact, mild, moderate, strong).",
)
@click.option("--size", type=click.IntRange(min=16), default=512, help="Side of the control copies (the generator's).")
@click.option("--seed", default=42, help="Seed of the draws and the augmentations.")
def sample(results, model, run_id, force, prompts, real_root, n, controls, size, seed):
    """Sample training prompts (then generate 10 images each) and write the positive-control ladder."""
    from .sample import SampleRequest, run_sample

    request = SampleRequest(prompts, real_root, results, model, run_id, n, controls, size, seed, force)
    echo_outputs(*run_sample(request))


@main.command()
@stage_run_options(device=True)
@click.option("--train-prompts", type=_file, required=True, help="prompts table of the whole training pool (TRAIN).")
@click.option("--holdout-prompts", type=_file, required=True, help="prompts table of a patient-disjoint real holdout.")
@click.option("--real-root", type=_dir, required=True, help="Folder both prompts tables' image_path are relative to.")
@click.option("--reid-weights", type=_file, required=True, help="Re-ID Siamese checkpoint (plain state_dict .pth).")
@click.option(
    "--reid-preprocessing",
    type=PREPROCESSING,
    default=Settings.reid_preprocessing,
    help="chexgenbench: 224 px, no normalisation; packhaeuser: 256 px + ImageNet normalisation.",
)
@click.option(
    "--chain-run", callback=folder_name, help="Run id of the chain's generate/embed [default: <run-id>.privacy]."
)
@click.option("--sample-dir", type=_dir, help="Output of `privacy sample` [default: <run>/privacy-sample].")
@click.option(
    "--images", type=_file, help="images table of the generations [default: <chain>/generate/images.parquet]."
)
@click.option(
    "--images-root", type=_dir, help="Folder the images table's paths are relative to [default: its metadata]."
)
@click.option(
    "--synth-embeddings", type=_file, multiple=True, help="Embeddings of the generations (repeat) [<chain>/embed]."
)
@click.option("--train-embeddings", type=_file, multiple=True, help="Embeddings of the training pool (repeat).")
@click.option(
    "--holdout-embeddings", type=_file, multiple=True, help="Embeddings of the holdout (repeat) [<run>/embed]."
)
@click.option(
    "--control-embeddings", type=_file, multiple=True, help="Embeddings of the controls [<chain>-control/embed]."
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
@click.option("--cache-dir", type=_dir, help="Re-ID embedding cache [default: $CHEXBENCH_CACHE_DIR/privacy].")
def run(
    results,
    model,
    run_id,
    force,
    device,
    train_prompts,
    holdout_prompts,
    real_root,
    reid_weights,
    reid_preprocessing,
    chain_run,
    sample_dir,
    images,
    images_root,
    synth_embeddings,
    train_embeddings,
    holdout_embeddings,
    control_embeddings,
    extractors,
    weights,
    top_k,
    delta,
    dcr_quantile,
    nndr_max,
    reid_quantile,
    pixel_size,
    bootstrap,
    ci_level,
    reid_spread_floor,
    space_spread_floor,
    seed,
    evidence_pairs,
    tile,
    batch_size,
    workers,
    cache_dir,
):
    """Score the generations against the training set; writes the per-prompt CSV, the audit and metrics."""
    from .provenance import parse_declarations
    from .run import Request
    from .run import run as run_stage

    settings = Settings(
        reid_preprocessing=reid_preprocessing,
        pixel_size=pixel_size,
        top_k=top_k,
        delta=delta,
        dcr_quantile=dcr_quantile,
        nndr_max=nndr_max,
        reid_quantile=reid_quantile,
        bootstrap=bootstrap,
        ci_level=ci_level,
        reid_spread_floor=reid_spread_floor,
        space_spread_floor=space_spread_floor,
        seed=seed,
        evidence_pairs=evidence_pairs,
        tile=tile,
    )
    request = Request(
        results=results,
        model=model,
        run_id=run_id,
        train_prompts=train_prompts,
        holdout_prompts=holdout_prompts,
        real_root=real_root,
        reid_weights=reid_weights,
        chain_run=chain_run,
        sample_dir=sample_dir,
        images=images,
        images_root=images_root,
        synth_embeddings=list(synth_embeddings),
        train_embeddings=list(train_embeddings),
        holdout_embeddings=list(holdout_embeddings),
        control_embeddings=list(control_embeddings),
        extractors=list(dict.fromkeys(extractors)),
        weights=parse_declarations(weights),
        settings=settings,
        device=device,
        batch_size=batch_size,
        workers=workers,
        cache_dir=cache_dir,
        force=force,
    )
    echo_outputs(*run_stage(request))


@main.command("tiny-reid")
@click.argument("out", type=_file)
@click.option("--seed", default=0, help="Seed of the random weights.")
@click.option("--base-width", type=click.IntRange(min=1), default=8, help="ResNet base width (64 = the real size).")
def tiny_reid(out, seed, base_width):
    """Write a random-weight re-ID checkpoint in the published key layout (tests and the demo)."""
    from .reid import build_tiny_reid

    click.echo(build_tiny_reid(out, seed=seed, base_width=base_width))
