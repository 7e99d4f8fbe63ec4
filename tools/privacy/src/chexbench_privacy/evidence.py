"""Evidence a person can look at: the closest (synthetic, training) pairs side by side with their difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.atomic import atomic_path
from PIL import Image, ImageDraw

from .images import grey_at
from .provenance import REID

TILE = 160
TEXT_H = 30


def _closeness(synth: pd.DataFrame, instruments: dict, primary: str) -> pd.DataFrame:
    """Per generation and informative space: its statistic over the flag threshold (< 1: below it), smaller =
    closer; the primary space's DCR alone when no space is informative."""
    out = {}
    for name, inst in instruments.items():
        if not inst.informative:
            continue
        if name == REID:
            out[name] = (1 - synth["reid_nn_score"]) / max(1 - inst.thresholds["reid"]["value"], 1e-12)
        else:
            out[name] = synth[f"dcr_{name}"] / max(inst.thresholds["dcr"]["value"], 1e-12)
    return pd.DataFrame(out, index=synth.index) if out else pd.DataFrame({primary: synth[f"dcr_{primary}"]})


def flagged_pairs(per_image: pd.DataFrame, plan, n: int, instruments: dict, primary: str) -> pd.DataFrame:
    """The n generations most like a training image: flagged first, then by closeness relative to the threshold in
    the space where they are closest. The partner is the nearest training image in that space."""
    synth = per_image[per_image["set"] == "synthetic"].copy()
    closeness = _closeness(synth, instruments, primary)
    synth["partner_space"] = closeness.idxmin(axis=1)
    synth["closeness"] = closeness.min(axis=1)
    synth = synth.sort_values(["flag_any", "closeness"], ascending=[False, True], kind="stable").head(n)
    latent = synth["partner_space"].where(synth["partner_space"] != REID, primary)
    reid = synth["partner_space"] == REID
    synth["train_prompt_id"] = _per_row(synth, "nn_prompt_id_", latent).where(~reid, synth["reid_nn_prompt_id"])
    synth["train_patient"] = _per_row(synth, "nn_patient_", latent).where(~reid, synth["reid_nn_patient"])
    synth["dcr"] = _per_row(synth, "dcr_", latent).astype(float)
    synth["nndr"] = _per_row(synth, "nndr_", latent).astype(float)
    files = plan.synth.set_index("image_id")["file"]
    train = plan.train.set_index("prompt_id")
    synth["synthetic_file"] = files.loc[synth["image_id"]].to_numpy()
    synth["train_file"] = train.loc[synth["train_prompt_id"], "file"].to_numpy()
    synth["train_image_path"] = train.loc[synth["train_prompt_id"], "image_path"].to_numpy()
    rule_columns = [c for c in synth.columns if c.startswith(("flag_dcr_", "flag_nndr_"))] + ["flag_reid"]
    synth["rules"] = [",".join(_rule_name(c) for c in rule_columns if row[c]) or "-" for _, row in synth.iterrows()]
    columns = [
        "image_id",
        "prompt_id",
        "train_prompt_id",
        "train_patient",
        "train_image_path",
        "partner_space",
        "dcr",
        "nndr",
        "reid_nn_score",
        "reid_source",
        "rules",
        "synthetic_file",
        "train_file",
    ]
    return synth[columns].reset_index(drop=True)


def _per_row(frame: pd.DataFrame, prefix: str, spaces: pd.Series) -> pd.Series:
    """Each row's value of column <prefix><its space>."""
    return pd.Series([frame.at[i, f"{prefix}{space}"] for i, space in spaces.items()], index=frame.index, dtype=object)


def _rule_name(column: str) -> str:
    """flag_dcr_inception -> dcr/inception, flag_reid -> reid."""
    rule, _, space = column.removeprefix("flag_").partition("_")
    return f"{rule}/{space}" if space else rule


def _tile(grey255: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(grey255, 0, 255).astype(np.uint8), mode="L")


def contact_sheet(pairs: pd.DataFrame, path: Path) -> Path:
    """One row per pair: synthetic | nearest training image | |difference| (x2), with the distances beneath."""
    rows = max(len(pairs), 1)
    sheet = Image.new("L", (3 * TILE, rows * (TILE + TEXT_H)), color=255)
    draw = ImageDraw.Draw(sheet)
    if pairs.empty:
        draw.text((4, 4), "no synthetic images", fill=0)
    for r, pair in pairs.iterrows():
        synth, train = grey_at(pair["synthetic_file"], TILE), grey_at(pair["train_file"], TILE)
        y = r * (TILE + TEXT_H)
        for c, tile in enumerate((synth, train, 2 * np.abs(synth - train))):
            sheet.paste(_tile(tile), (c * TILE, y))
        draw.text(
            (4, y + TILE + 2), f"{pair['image_id']} ~ {pair['train_prompt_id']} ({pair['partner_space']})", fill=0
        )
        draw.text(
            (4, y + TILE + 15),
            f"DCR {pair['dcr']:.3f}  NNDR {pair['nndr']:.2f}  re-ID {pair['reid_nn_score']:.3f}  flags {pair['rules']}",
            fill=0,
        )
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
