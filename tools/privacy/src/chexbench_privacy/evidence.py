"""Evidence a person can look at: the closest (synthetic, training) pairs side by side with their difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.atomic import atomic_path
from PIL import Image, ImageDraw

from .images import grey_at

TILE = 160
TEXT_H = 30


def flagged_pairs(per_image: pd.DataFrame, plan, n: int) -> pd.DataFrame:
    """The n generations most like a training image: flagged first, then by re-ID score, then by DCR. The partner is
    the nearest training image in the space whose rule fired (the latent one unless only re-ID fired)."""
    synth = per_image[per_image["set"] == "synthetic"].copy()
    synth = synth.sort_values(["flag_any", "reid_nn_score", "dcr"], ascending=[False, False, True]).head(n)
    reid_only = synth["flag_reid"] & ~(synth["flag_dcr"] | synth["flag_nndr"])
    synth["partner_space"] = np.where(reid_only, "reid", "latent")
    synth["train_prompt_id"] = np.where(reid_only, synth["reid_nn_prompt_id"], synth["latent_nn_prompt_id"])
    synth["train_patient"] = np.where(reid_only, synth["reid_nn_patient"], synth["latent_nn_patient"])
    files = plan.synth.set_index("image_id")["file"]
    train = plan.train.set_index("prompt_id")
    synth["synthetic_file"] = files.loc[synth["image_id"]].to_numpy()
    synth["train_file"] = train.loc[synth["train_prompt_id"], "file"].to_numpy()
    synth["train_image_path"] = train.loc[synth["train_prompt_id"], "image_path"].to_numpy()
    synth["rules"] = [
        ",".join(r for r in ("dcr", "nndr", "reid") if row[f"flag_{r}"]) or "-" for _, row in synth.iterrows()
    ]
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
