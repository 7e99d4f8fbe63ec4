"""A small align world: real grey radiograph stand-ins with prompts and labels, generations (one per prompt plus a
second for the first prompt), a tiny random BioViL-T in the published layouts."""

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chexbench_common.imageio import save_grey_png
from chexbench_schema import CHEXPERT_LABELS, write_table

sys.path.insert(0, str(Path(__file__).parent))

PROMPTS = [
    "No acute cardiopulmonary process.",
    "Small left pleural effusion.",
    "Moderate cardiomegaly with mild edema!",
    "Right lung base opacity, likely atelectasis.",
    "Support devices in place; no pneumothorax",
]


@dataclass
class World:
    root: Path
    prompts: Path
    images: Path
    real_root: Path
    biovil: Path
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
            "--prompts",
            str(self.prompts),
            "--images",
            str(self.images),
            "--real-root",
            str(self.real_root),
            "--image-weights",
            str(self.biovil / "biovil_t_image_model_proj_size_128.pt"),
            "--text-model",
            str(self.biovil / "text"),
            "--bootstrap",
            "50",
            "--progress",
            "none",
            *extra,
        ]


def _picture(rng, h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(
        0.5 + 0.3 * np.sin(x / rng.uniform(3, 9)) * np.cos(y / rng.uniform(3, 9)) + 0.05 * rng.standard_normal((h, w)),
        0,
        1,
    )


def make_world(tmp: Path) -> World:
    from chexbench_align.tiny import build_tiny_biovil

    rng = np.random.default_rng(0)
    real_root, gen_root = tmp / "real", tmp / "gen"
    rows, images = [], []
    for i, text in enumerate(PROMPTS):
        pid = f"p{i:016x}"
        save_grey_png((_picture(rng, 80 + 4 * i, 64) * 255).astype(np.uint8), real_root / f"real_{i}.png")
        labels = {label: None for label in CHEXPERT_LABELS}
        labels["Pleural Effusion"] = 1.0 if "effusion" in text else 0.0
        rows.append(
            {
                "split": "test",
                "prompt_id": pid,
                "prompt": text,
                "patient_id": f"pat{i}",
                "study_id": None,
                "id": None,
                "image_path": f"real_{i}.png",
                "view": "PA",
                **labels,
            }
        )
        for k in range(2 if i == 0 else 1):
            name = f"gen_{i}_{k}.png"
            save_grey_png((_picture(rng, 64, 64) * 255).astype(np.uint8), gen_root / name)
            images.append(
                {
                    "image_id": f"{pid}-{k}",
                    "prompt_id": pid,
                    "model": "m",
                    "path": name,
                    "seed": 100 + len(images),
                    "sample_index": k,
                    "width": 64,
                    "height": 64,
                    "steps": 2,
                    "guidance": 4.5,
                    "dtype": "float32",
                    "sha256": hashlib.sha256((gen_root / name).read_bytes()).hexdigest(),
                }
            )
    prompts = write_table(pd.DataFrame(rows), tmp / "prompts.parquet", "prompts", producer="test")
    table = write_table(
        pd.DataFrame(images), tmp / "images.parquet", "images", producer="test", extra={"images_root": "gen"}
    )
    return World(tmp, prompts, table, real_root, build_tiny_biovil(tmp / "biovil"), tmp / "Results")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("align"))


@pytest.fixture
def fresh(tmp_path) -> World:
    return make_world(tmp_path)
