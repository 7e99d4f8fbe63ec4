"""What align reads: the images table (generations), the prompts table (their texts and labels), and optionally the
real images of the same prompts (the ceiling). Validated before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from chexbench_common.errors import BadInputError, ImageDecodeError
from chexbench_common.imageio import is_dicom
from chexbench_common.paths import resolve_under
from chexbench_schema import CHEXPERT_LABELS, read_metadata, read_table


@dataclass
class Pairs:
    """Images with their prompt (text and labels): one row per image, `file` resolved."""

    frame: pd.DataFrame
    source: Path


def _table(path: Path, kind: str, hint: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise BadInputError(f"{path}: {kind} table not found; {hint}")
    table = read_table(path, kind)
    if table.empty:
        raise BadInputError(f"{path}: the {kind} table is empty; {hint}")
    return table


def _existing(frame: pd.DataFrame, source: Path, hint: str) -> pd.DataFrame:
    missing = [i for i, f in enumerate(frame["file"]) if not f.is_file()]
    if missing:
        i = missing[0]
        raise BadInputError(
            f"{source} row {i + 1}: image file {frame['file'].iloc[i]} is missing ({len(missing)} in all); {hint}"
        )
    return frame


def synthetic_pairs(images: Path, images_root: Path | None, prompts: pd.DataFrame, prompts_path: Path) -> Pairs:
    """The generations joined to their prompts (every image's prompt_id must be in the prompts table)."""
    table = _table(images, "images", "run chexbench-generate first or pass --images")
    if images_root is None:
        recorded = read_metadata(images).get("extra", {}).get("images_root")
        images_root = Path(images).parent / recorded if recorded else Path(images).parent
    known = prompts.set_index("prompt_id")
    unknown = ~table["prompt_id"].isin(known.index)
    if unknown.any():
        i = int(unknown.to_numpy().argmax())
        raise BadInputError(
            f"{images} row {i + 1}: prompt_id {table['prompt_id'].iloc[i]} is not in {prompts_path} "
            f"({int(unknown.sum())} images in all); pass the prompts table the images were generated from"
        )
    frame = table[["image_id", "prompt_id"]].copy()
    frame["file"] = [resolve_under(images_root, p, where=f"{images} row {i + 1}") for i, p in enumerate(table["path"])]
    frame = frame.join(known[["prompt", *CHEXPERT_LABELS]], on="prompt_id")
    return Pairs(_existing(frame, images, "check --images-root"), Path(images))


def real_pairs(prompts: pd.DataFrame, prompts_path: Path, real_root: Path, prompt_ids: pd.Series) -> Pairs:
    """The real image of each prompt the generations used, with its own report (the ceiling)."""
    rows = prompts[prompts["prompt_id"].isin(set(prompt_ids)) & prompts["image_path"].notna()]
    if rows.empty:
        raise BadInputError(f"{prompts_path}: none of the generations' prompts has an image_path for the ceiling")
    frame = rows[["prompt_id", "prompt", *CHEXPERT_LABELS]].copy()
    frame.insert(0, "image_id", "real:" + frame["prompt_id"])
    frame["file"] = [
        resolve_under(real_root, p, where=f"{prompts_path} prompt {pid}")
        for pid, p in zip(frame["prompt_id"], rows["image_path"], strict=True)
    ]
    return Pairs(_existing(frame.reset_index(drop=True), prompts_path, "check --real-root"), Path(prompts_path))


def load_prompts(path: Path, special_tokens: list[str]) -> pd.DataFrame:
    """The prompts table; a prompt holding a tokenizer's special token is refused (hi-ml refuses it too)."""
    table = _table(path, "prompts", "convert a split first (chexbench-splits) or pass --prompts")
    for token in special_tokens:
        hit = table["prompt"].str.contains(token, regex=False)
        if hit.any():
            i = int(hit.to_numpy().argmax())
            raise BadInputError(f"{path} row {i + 1}: the prompt contains the special token {token}; remove it")
    return table


def monochrome1_dicoms(files: list[Path]) -> list[Path]:
    """The DICOM files among `files` stored as MONOCHROME1 (read from the header only)."""
    import pydicom

    found = []
    for path in files:
        if is_dicom(Path(path)):
            try:
                header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PhotometricInterpretation"])
            except Exception as exc:  # a corrupt file: one line naming it
                raise ImageDecodeError(f"{path}: cannot read the DICOM header ({type(exc).__name__}: {exc})") from None
            if str(header.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
                found.append(Path(path))
    return found
