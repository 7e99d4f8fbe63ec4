"""The demo's CheXbert stand-in (random weights, no download), in the published layout (for `score`). `make bench`
builds it; it measures nothing."""

from __future__ import annotations

from pathlib import Path

import click
from chexbench_common.options import DIR


@click.command("tiny-chexbert")
@click.argument("folder", type=DIR)
@click.option("--seed", type=int, default=0, show_default=True)
def tiny_chexbert(folder: Path, seed: int) -> None:
    """Write a tiny random CheXbert (FOLDER/chexbert.pth) and its tokenizer folder in the published layout."""
    from .chexbert import write_tiny_chexbert

    for path in write_tiny_chexbert(folder, seed=seed):
        click.echo(path)


COMMANDS = [tiny_chexbert]
