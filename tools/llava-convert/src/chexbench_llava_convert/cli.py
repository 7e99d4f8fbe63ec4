"""`chexbench-llava-convert`: thin Click layer over convert.py (`convert`), reference.py (`check-conversion`) and
tiny.py (`tiny-llava-rad`, the demo's random stand-in in LLaVA-Rad's own layout)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from chexbench_common.cli import stage_group
from chexbench_common.device import DTYPES
from chexbench_common.errors import BadInputError, ImageDecodeError
from chexbench_common.options import DIR, FILE, device_option, progress_option

from . import __version__

main = stage_group(
    "llava-convert",
    __version__,
    "LLaVA-Rad -> transformers: convert your LLaVA-Rad checkpoint and Vicuna into the LLaVA folder llava-report reads, "
    "and check the conversion against an independent reference forward.",
)

# Largest allowed max|Δ| / max(1, max|reference|) per compute dtype. Measured here (CPU, random weights, ViT-B/14 at
# 518 px + a small Llama): fp32 <= 1.1e-6 relative; bf16 0.011 (tower) and 0.12 (logits), so a half-precision check
# is only a coarse sanity check. Never measured on the real 7B model.
DEFAULT_TOLERANCE = {"float32": 1e-3, "bfloat16": 0.25, "float16": 0.25}


@main.command()
@click.option("--llava-rad", type=DIR, required=True, help="LLaVA-Rad checkpoint folder (adapter, projector, tower).")
@click.option("--vicuna", type=DIR, required=True, help="Vicuna-7B v1.5 folder (config, weights, tokenizer).")
@click.option("--out", type=DIR, required=True, help="Output folder (written atomically; reused if up to date).")
@click.option("--merge/--no-merge", default=False, help="Merge the LoRA into the weights (fp32) instead of adapter/.")
@click.option("--dtype", type=click.Choice(DTYPES), default="bfloat16", help="dtype of the saved weights.")
@click.option("--vision-heads", type=click.IntRange(min=1), help="Attention heads of the tower [hidden / 64].")
@progress_option
def convert(llava_rad: Path, vicuna: Path, out: Path, merge: bool, dtype: str, vision_heads: int | None) -> None:
    """Convert a local LLaVA-Rad checkpoint + Vicuna into a transformers LlavaForConditionalGeneration folder."""
    from chexbench_common.env import configure_caches

    configure_caches()
    from .convert import convert as run_convert

    result = run_convert(llava_rad, vicuna, out, merge=merge, dtype=dtype, vision_heads=vision_heads)
    click.echo(f"{'up to date' if result.reused else 'converted'}: {result.out}")


@main.command("check-conversion")
@click.option("--converted", type=DIR, required=True, help="Folder written by `convert`.")
@click.option("--llava-rad", type=DIR, required=True, help="The LLaVA-Rad checkpoint folder it was converted from.")
@click.option("--vicuna", type=DIR, required=True, help="The Vicuna folder it was converted from.")
@click.option("--image", type=FILE, help="Test image [a synthetic pattern].")
@click.option("--prompt", help="Prompt with one <image> [a findings instruction].")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", help="Compute dtype of both models.")
@click.option("--tolerance", type=float, help="Max |Δ| / max(1, max|ref|) [1e-3 fp32, 0.25 half].")
@device_option
def check_conversion(converted, llava_rad, vicuna, image, prompt, dtype, tolerance, device) -> None:
    """Run the converted model and an independent reference forward; print max |Δ|, fail over the tolerance."""
    from chexbench_common.env import configure_caches

    configure_caches()
    from chexbench_common.device import select_device, torch_dtype
    from PIL import Image

    from .reference import DEFAULT_PROMPT
    from .reference import check_conversion as run_check

    picture = None
    if image is not None:
        try:
            picture = Image.open(image).convert("RGB")
        except (OSError, ValueError) as exc:
            raise ImageDecodeError(f"{image} cannot be read as an image ({exc})") from None
    deltas = run_check(
        converted,
        llava_rad,
        vicuna,
        picture,
        prompt=prompt or DEFAULT_PROMPT,
        device=select_device(device),
        dtype=torch_dtype(dtype),
    )
    saved = json.loads((converted / "chexbench_conversion.json").read_text())["dtype"]
    if DTYPES.index(saved) > DTYPES.index(dtype):
        click.echo(
            f"note: the converted weights are {saved}, so the differences include their rounding; "
            "convert with --dtype float32 into another folder for an exact check"
        )
    tol = tolerance if tolerance is not None else DEFAULT_TOLERANCE[dtype]
    failed = []
    for name in ("pixels", "tower_features", "image_features", "logits", "image_token_logit"):
        scale = max(1.0, deltas.get(f"{name}_scale", 1.0))
        click.echo(f"{name}: max |Δ| {deltas[name]:.3g} (reference scale {scale:.3g})")
        if deltas[name] > tol * scale:
            failed.append(f"{name} max |Δ| {deltas[name]:.3g} > {tol:g} x {scale:.3g}")
    if failed:
        raise BadInputError(f"{converted} differs from the reference forward: {'; '.join(failed)}")
    click.echo(f"ok: {converted} matches the reference within {tol:g} (relative to max(1, max|ref|))")


@main.command("tiny-llava-rad")
@click.argument("folder", type=DIR)
@click.option("--seed", type=int, default=0, show_default=True)
def tiny_llava_rad(folder: Path, seed: int) -> None:
    """Write a tiny random LLaVA-Rad checkpoint (FOLDER/llava-rad) and Vicuna (FOLDER/vicuna) in their own layouts:
    the demo's stand-in for `convert` (random weights, no download; it measures nothing)."""
    from .tiny import write_tiny_llava_rad

    tiny = write_tiny_llava_rad(folder, seed=seed)
    click.echo(f"{tiny.llava_rad}\n{tiny.vicuna}")
