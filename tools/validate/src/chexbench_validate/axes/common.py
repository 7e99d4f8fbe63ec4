"""What every axis builder shares: the pool options, reading the pool's images, writing an image set for
`chexbench-generate import` (OUT/<set_id>/images/ and images.csv with prompt_id, file)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import click
import numpy as np
import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.imageio import load_grey, save_png, to_uint8
from chexbench_common.paths import resolve_under
from chexbench_schema import read_table
from PIL import Image

IMAGES_CSV = "images.csv"
_path = click.Path(path_type=Path)


def build_command(name: str, help_text: str):
    """A `build <name>` command with the options every axis takes, passed as pool_prompts, pool_root, out, seed."""

    def decorate(f):
        @click.command(name, help=help_text)
        @click.option("--pool-prompts", type=_path, required=True, help="prompts table of the real pool.")
        @click.option("--pool-root", type=_path, required=True, help="Folder its image_path values are relative to.")
        @click.option("--out", type=_path, required=True, help="Folder of the sets, plan.csv and splits.csv.")
        @click.option("--seed", type=int, default=0, help="Seed of every random choice of the sets.")
        @functools.wraps(f)
        def command(**kwargs):
            return f(**kwargs)

        return command

    return decorate


def read_pool(pool_prompts: Path) -> pd.DataFrame:
    return read_table(pool_prompts, "prompts")


def load_pool_image(pool_root: Path, row, max_side: int | None) -> np.ndarray:
    """One pool image as grey [0, 1] floats, shrunk (antialiased bicubic, aspect kept) when its longer side exceeds
    `max_side`."""
    path = resolve_under(pool_root, row["image_path"], where=f"prompt {row['prompt_id']}")
    grey = load_grey(path)
    if max_side and max(grey.shape) > max_side:
        scale = max_side / max(grey.shape)
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        image = Image.fromarray(grey.astype(np.float32), mode="F").resize(size, Image.Resampling.BICUBIC)
        grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    return grey


def fresh_folder(folder: Path) -> Path:
    """An empty folder for one set (a rebuilt set never keeps files of its previous build)."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "images").mkdir(parents=True)
    return folder


def save_grey(grey: np.ndarray, path: Path) -> str:
    """An 8-bit grey PNG (atomically); returns its path relative to the set's folder (images/<name>)."""
    save_png(Image.fromarray(to_uint8(grey)), path)
    return f"{path.parent.name}/{path.name}"


def write_images_csv(folder: Path, prompt_ids: list[str], files: list[str]) -> Path:
    """OUT/<set_id>/images.csv: one row per image to import (files relative to OUT/<set_id>/, the CSV's folder)."""
    path = folder / IMAGES_CSV
    with atomic_path(path) as tmp:
        pd.DataFrame({"prompt_id": prompt_ids, "file": files}).to_csv(tmp, index=False)
    return path
