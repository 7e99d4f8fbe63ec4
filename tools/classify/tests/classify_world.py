"""A small classify world with a planted signal: Cardiomegaly-positive images are bright, negatives dark (real and
synthetic alike), so a tiny network must beat chance on it within an epoch or two. The reversed world plants a bright
square instead: in real images it marks Cardiomegaly, in their synthetic twins its absence does."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.imageio import save_grey_png
from chexbench_schema import CHEXPERT_LABELS, write_table

SIZE = 32


@dataclass
class World:
    root: Path
    train: Path
    test: Path
    images: Path
    real_root: Path
    results: Path

    def args(self, *extra: str) -> list[str]:
        return [
            "run",
            "--results",
            str(self.results),
            "--model",
            "m",
            "--run-id",
            "r",
            "--train-prompts",
            str(self.train),
            "--test-prompts",
            str(self.test),
            "--real-root",
            str(self.real_root),
            "--images",
            str(self.images),
            "--size",
            str(SIZE),
            "--width",
            "4",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--workers",
            "0",
            "--seeds",
            "1",
            "--bootstrap",
            "50",
            "--lr",
            "3e-3",
            "--val-fraction",
            "0.2",
            "--progress",
            "none",
            "--cache-dir",
            str(self.root / "cache"),
            *extra,
        ]


def _image(rng, positive: bool) -> np.ndarray:
    base = 0.75 if positive else 0.25
    return np.clip(base + 0.1 * rng.standard_normal((48, 40)), 0, 1)


def _square(rng, marked: bool) -> np.ndarray:
    image = 0.2 + 0.05 * rng.standard_normal((48, 40))
    if marked:
        image[8:40, 6:34] = 1.0
    return np.clip(image, 0, 1)


def _rows(split: str, n: int, offset: int, rng, root: Path, draw) -> list[dict]:
    rows = []
    for i in range(n):
        k = offset + i
        positive = bool(i % 2)
        name = f"{split}_{k}.png"
        save_grey_png((draw(rng, positive) * 255).astype(np.uint8), root / name)
        labels = {label: None for label in CHEXPERT_LABELS}  # blank: negative, so those classes are undefined
        labels["Cardiomegaly"] = float(positive)
        labels["Edema"] = -1.0 if k % 3 == 0 else 0.0  # uncertain entries for the label policies
        rows.append(
            {
                "split": split,
                "prompt_id": f"p{k:016x}",
                "prompt": f"report {k}",
                "patient_id": f"{split}-pat{k // 2}",
                "study_id": None,
                "id": None,
                "image_path": name,
                "view": "PA",
                **labels,
            }
        )
    return rows


def make_world(tmp: Path, n_train: int = 48, n_test: int = 24, reversed_twins: bool = False) -> World:
    rng = np.random.default_rng(0)
    real_root, gen = tmp / "real", tmp / "gen"
    draw = _square if reversed_twins else _image
    train_rows = _rows("train", n_train, 0, rng, real_root, draw)
    test_rows = _rows("test", n_test, 1000, rng, real_root, draw)
    images = []
    for row in train_rows:
        name = f"{row['prompt_id']}.png"
        marked = (row["Cardiomegaly"] == 1) != reversed_twins
        save_grey_png((draw(rng, marked) * 255).astype(np.uint8), gen / name)
        images.append(
            {
                "image_id": f"{row['prompt_id']}-0",
                "prompt_id": row["prompt_id"],
                "model": "m",
                "path": name,
                "seed": len(images),
                "sample_index": 0,
                "width": 40,
                "height": 48,
                "steps": 2,
                "guidance": 4.5,
                "dtype": "float32",
                "sha256": hashlib.sha256((gen / name).read_bytes()).hexdigest(),
            }
        )
    train = write_table(pd.DataFrame(train_rows), tmp / "train.parquet", "prompts", producer="test")
    test = write_table(pd.DataFrame(test_rows), tmp / "test.parquet", "prompts", producer="test")
    table = write_table(
        pd.DataFrame(images), tmp / "images.parquet", "images", producer="test", extra={"images_root": "gen"}
    )
    return World(tmp, train, test, table, real_root, tmp / "Results")
