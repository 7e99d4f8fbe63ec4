"""chexbench-align: thin Click layer over run.py and tiny.py."""

from __future__ import annotations

import os

import click
from chexbench_common.cli import stage_group
from chexbench_common.options import DIR, FILE, builds_request, echo_outputs, stage_run_options

from . import __version__

main = stage_group("align", __version__, "Image-text alignment of synthetic chest X-rays (BioViL-T), batched.")


@main.command()
@stage_run_options(device=True)
@click.option("--prompts", type=FILE, required=True, help="prompts table the images were generated from.")
@click.option("--images", type=FILE, help="images table [default: <run>/generate/images.parquet].")
@click.option(
    "--images-root", type=DIR, help="Folder the images table's paths are relative to [default: its metadata]."
)
@click.option("--real-root", type=DIR, help="Real images' folder: adds the ceiling (each real image vs its report).")
@click.option("--scorer", type=click.Choice(["biovil-t"]), default="biovil-t", show_default=True)
@click.option(
    "--engine",
    type=click.Choice(["native", "himl"]),
    default=lambda: os.environ.get("CHEXBENCH_ALIGN_ENGINE") or os.environ.get("CHEXBENCH_VARIANT") or "native",
    show_default="$CHEXBENCH_ALIGN_ENGINE, else the image variant, else native",
    help="BioViL-T implementation: native (main stack) or himl (hi-ml-multimodal 0.2.2, isolated environment).",
)
@click.option("--image-weights", type=FILE, required=True, help="biovil_t_image_model_proj_size_128.pt (local).")
@click.option("--text-model", type=DIR, required=True, help="CXR-BERT folder: config.json, vocab.txt, weights.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--conditional/--no-conditional", default=True, show_default=True, help="Also per CheXpert label.")
@click.option(
    "--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True, help="Prompt-bootstrap replicates."
)
@click.option("--ci-level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option("--seed", default=42, show_default=True, help="Seed of the floor's shuffle and the bootstrap.")
@click.option("--extra-info", help="The original CSV's `Extra Info` column [default: model, run, scorer].")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--workers", type=click.IntRange(min=0), default=0, show_default=True, help="DataLoader decoding workers."
)
@builds_request(".run:Request")
def run(request):
    """Score each generation against its prompt; floor, ceiling, per pathology, with CIs."""
    from .run import run as run_stage

    echo_outputs(*run_stage(request))


@main.command("tiny-biovil")
@click.argument("out_dir", type=DIR)
@click.option("--seed", default=0, help="Seed of the random weights.")
def tiny_biovil(out_dir, seed):
    """Write a random-weight BioViL-T in the published layouts: <OUT_DIR>/biovil_t_image_model_proj_size_128.pt and
    <OUT_DIR>/text/ (tests and the demo)."""
    from .tiny import build_tiny_biovil

    click.echo(build_tiny_biovil(out_dir, seed=seed))
