"""Where a run's pictures are: the synthetic images table and the prompts table the stages recorded, with their roots.

The manifests record paths as the stage was given them, and the folder it ran in (relative paths are resolved
there); a path that no longer exists (the run was moved) leaves the panel that needs it with a note instead of
pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from chexbench_common.paths import resolve_under
from chexbench_schema import read_metadata, read_table

from .collect import Run


@dataclass
class Pictures:
    """Synthetic images (image_id, prompt_id, file, + the prompt's text and labels) and real images (prompt_id,
    prompt, file, labels); `notes` says what could not be found."""

    synth: pd.DataFrame
    real: pd.DataFrame
    notes: list[str]


def table_root(table: Path, fallback: Path | None = None) -> Path:
    """A table's `images_root` metadata (relative to the table's folder), else `fallback`, else its folder."""
    recorded = read_metadata(table).get("extra", {}).get("images_root")
    if recorded:
        return table.parent / recorded
    return fallback if fallback is not None else table.parent


def synthetic_files(table: Path, root: Path | None = None) -> pd.DataFrame:
    """An images table with each row's file resolved under its root (image_id, prompt_id, file)."""
    frame = read_table(table, "images")
    root = root or table_root(table)
    files = [resolve_under(root, p, where=f"{table} row {i + 1}") for i, p in enumerate(frame["path"])]
    return frame.assign(file=files)[["image_id", "prompt_id", "file", "sha256", "seed"]]


def real_files(prompts: Path, real_root: Path | None) -> pd.DataFrame:
    """A prompts table's rows with their real image resolved under the real root (file None without an image)."""
    frame = read_table(prompts, "prompts")
    root = real_root or table_root(prompts)
    files = [
        None if pd.isna(p) else resolve_under(root, p, where=f"{prompts} row {i + 1}")
        for i, p in enumerate(frame["image_path"])
    ]
    return frame.assign(file=files)


def recorded_input(run: Run, stage: str, key: str) -> Path | None:
    """The path `stage` recorded for its input `key`, resolved where it ran (None when it did not run or record it)."""
    s = run.stage(stage)
    return s.input_path(key) if s is not None else None


def run_pictures(run: Run) -> Pictures | None:
    """The run's synthetic images (generate's table) and the prompts they came from, or None when neither stage
    recorded them (no generate or embed)."""
    notes: list[str] = []
    generate, embed = run.finished("generate"), run.finished("embed")
    images = generate.output("images", "images.parquet") if generate else recorded_input(run, "embed", "images")
    prompts = recorded_input(run, "generate", "prompts") or recorded_input(run, "embed", "prompts")
    if images is None and prompts is None:
        return None
    params = embed.manifest.get("params", {}) if embed else {}
    synth = pd.DataFrame(columns=["image_id", "prompt_id", "file"])
    if images is not None and images.is_file():
        fallback = embed.recorded_path(params["images_root"]) if params.get("images_root") else None
        synth = synthetic_files(images, table_root(images, fallback) if fallback else None)
    elif images is not None:
        notes.append(f"synthetic images table {images} not found (moved?)")
    real = pd.DataFrame(columns=["prompt_id", "prompt", "file"])
    if prompts is not None and prompts.is_file():
        real = real_files(prompts, embed.recorded_path(params["real_root"]) if params.get("real_root") else None)
        synth = synth.merge(real.drop(columns=["file"]), on="prompt_id", how="left")
    elif prompts is not None:
        notes.append(f"prompts table {prompts} not found (moved?)")
    return Pictures(synth, real, notes)
