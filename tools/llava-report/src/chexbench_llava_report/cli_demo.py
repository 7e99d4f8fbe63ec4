"""The demo's stand-ins (random weights, no download): a tiny LLaVA-Rad in LLaVA-Rad's own file layout (for `convert`)
and a tiny CheXbert in the published layout (for `score`). `make bench` builds them; they measure nothing."""

from __future__ import annotations

from pathlib import Path

import click

_dir = click.Path(path_type=Path, file_okay=False)


@click.command("tiny-llava-rad")
@click.argument("folder", type=_dir)
@click.option("--seed", type=int, default=0, show_default=True)
def tiny_llava_rad(folder: Path, seed: int) -> None:
    """Write a tiny random LLaVA-Rad checkpoint (FOLDER/llava-rad) and Vicuna (FOLDER/vicuna) in their own layouts."""
    from .tiny import write_tiny_llava_rad

    tiny = write_tiny_llava_rad(folder, seed=seed)
    click.echo(f"{tiny.llava_rad}\n{tiny.vicuna}")


@click.command("tiny-chexbert")
@click.argument("folder", type=_dir)
@click.option("--seed", type=int, default=0, show_default=True)
def tiny_chexbert(folder: Path, seed: int) -> None:
    """Write a tiny random CheXbert (FOLDER/chexbert.pth) and its tokenizer folder in the published layout."""
    from .chexbert import write_tiny_chexbert

    for path in write_tiny_chexbert(folder, seed=seed):
        click.echo(path)


COMMANDS = [tiny_llava_rad, tiny_chexbert]
