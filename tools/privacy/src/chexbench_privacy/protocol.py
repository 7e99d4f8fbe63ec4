"""The CheXGenBench-compatible comparison: each generation against the training image its prompt came from."""

from __future__ import annotations

import numpy as np
import pandas as pd

# the original's per-prompt CSV columns, in its order
ORIGINAL_COLUMNS = [
    "Real Path",
    "Prompt",
    "Mean_reid_scores",
    "Max_reid_scores",
    "Mean_pixel_distance",
    "Min_pixel_distance",
    "Mean_latent_distance",
    "Min_latent_distance",
]


def latent_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The original's latent distance, row-wise: ||a - b||_2 / sqrt(d)."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return np.sqrt((diff**2).sum(axis=1)) / np.sqrt(a.shape[1])


def per_prompt(per_image: pd.DataFrame, prompts: pd.DataFrame, latent: str) -> pd.DataFrame:
    """One row per sampled prompt: the original's columns (the latent distance: per_image column `latent`), then
    ours (ids, counts, the worst generation, whether any generation was flagged)."""
    g = per_image.groupby("prompt_id", sort=False)
    worst = per_image.loc[g["reid_source"].idxmax(), ["prompt_id", "image_id"]].set_index("prompt_id")["image_id"]
    stats = pd.DataFrame(
        {
            "Mean_reid_scores": g["reid_source"].mean(),
            "Max_reid_scores": g["reid_source"].max(),
            "Mean_pixel_distance": g["pixel_source"].mean(),
            "Min_pixel_distance": g["pixel_source"].min(),
            "Mean_latent_distance": g[latent].mean(),
            "Min_latent_distance": g[latent].min(),
            "n_generations": g.size(),
            "max_reid_image_id": worst,
            "any_flag": g["flag_any"].any(),
        }
    )
    rows = prompts.set_index("prompt_id").loc[stats.index]
    out = pd.DataFrame(
        {"Real Path": rows["image_path"].to_numpy(), "Prompt": rows["prompt"].to_numpy()}, index=stats.index
    )
    out = out.join(stats)
    out.insert(len(ORIGINAL_COLUMNS), "prompt_id", out.index)
    out.insert(len(ORIGINAL_COLUMNS) + 1, "patient_id", rows["patient_id"].to_numpy())
    return out.reset_index(drop=True)
