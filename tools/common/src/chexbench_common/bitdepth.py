"""The `--bit-depth` option of every stage that decodes images (see chexbench_common.imageio for the rule)."""

from __future__ import annotations

import click

from .imageio import BIT_DEPTHS


def bit_depth_option(flag: str = "--bit-depth", images: str = "the images"):
    """`--bit-depth [auto|8|10|12|14|16]`, default auto; the value goes to load_grey(path, bit_depth)."""
    return click.option(
        flag,
        flag.lstrip("-").replace("-", "_"),
        type=click.Choice(BIT_DEPTHS),
        default="auto",
        show_default=True,
        help=(
            f"Significant bits of the PNG samples of {images}: auto reads the PNG sBIT chunk, else the "
            "container depth (8 or 16); a number divides by 2**N-1, for 12-bit data in 16-bit PNGs that lack "
            "sBIT. Samples above 2**N-1 are refused, never clipped. DICOM always uses its header (BitsStored)."
        ),
    )
