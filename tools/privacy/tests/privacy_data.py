"""A small world for the privacy tests: real images with patients, a TRAIN/holdout split, sampled prompts and their
positive-control ladder (through the real `sample` command), generations with one planted copy, and embeddings tables
whose vectors are a fixed function of the pixels (an 8 x 8 thumbnail), so copies are near and new images far."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.imageio import load_grey, save_grey_png
from chexbench_privacy.cli import main
from chexbench_schema import CHEXPERT_LABELS, read_table, write_embeddings, write_table
from click.testing import CliRunner
from PIL import Image

SIZE = 48
EXTRACTOR = "raddino"
WEIGHTS = "b" * 64


def smooth_field(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A random low-frequency grey image in [0, 1] (distinct images are far apart, like different patients)."""
    coarse = Image.fromarray(rng.uniform(0, 1, (6, 6)).astype(np.float32), mode="F")
    return np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64).clip(0, 1)


def thumbnail(path: Path) -> np.ndarray:
    """The stand-in embedding: the image squashed to 8 x 8, flattened (64-d)."""
    image = Image.fromarray(load_grey(path).astype(np.float32), mode="F")
    return np.asarray(image.resize((8, 8), Image.Resampling.BILINEAR), dtype=np.float32).ravel()


def prompt_rows(ids: list[str], files: list[str], patients: list[str | None], split: str) -> pd.DataFrame:
    rows = []
    for pid, file, patient in zip(ids, files, patients, strict=True):
        rows.append(
            {
                "split": split,
                "prompt_id": pid,
                "prompt": f"finding text of {pid}",
                "patient_id": patient,
                "study_id": None,
                "id": None,
                "image_path": file,
                "view": "PA",
                **{label: None for label in CHEXPERT_LABELS},
            }
        )
    return pd.DataFrame(rows)


def write_space(path: Path, ids, files, source: str, **meta) -> Path:
    vectors = np.stack([thumbnail(f) for f in files])
    frame = pd.DataFrame({"image_id": list(ids), "source": source, "extractor": meta.pop("extractor", EXTRACTOR)})
    return write_embeddings(
        frame,
        vectors,
        path,
        producer="test",
        extractor=frame["extractor"].iloc[0],
        weights_sha256=meta.pop("weights_sha256", WEIGHTS),
        preprocessing="thumbnail 8x8",
        extra=meta,
    )


@dataclass
class World:
    root: Path
    results: Path
    real_root: Path
    train: Path
    holdout: Path
    reid: Path
    model: str = "m"
    run_id: str = "r"

    @property
    def chain(self) -> Path:
        return self.results / self.model / f"{self.run_id}.privacy"

    def run_args(self, *extra: str) -> list[str]:
        return [
            "run",
            "--results",
            str(self.results),
            "--model",
            self.model,
            "--run-id",
            self.run_id,
            "--train-prompts",
            str(self.train),
            "--holdout-prompts",
            str(self.holdout),
            "--real-root",
            str(self.real_root),
            "--reid-weights",
            str(self.reid),
            "--workers",
            "0",
            "--bootstrap",
            "50",
            "--cache-dir",
            str(self.root / "cache"),
            "--progress",
            "none",
            *extra,
        ]


def invoke(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def make_world(
    tmp: Path,
    *,
    n_train: int = 40,
    n_holdout: int = 30,
    n_sample: int = 5,
    gens: int = 3,
    controls: int = 6,
    seed: int = 0,
) -> World:
    from chexbench_privacy.reid import build_tiny_reid

    rng = np.random.default_rng(seed)
    real_root = tmp / "real"
    files, ids, patients = [], [], []
    for i in range(n_train + n_holdout):
        name = f"img_{i:03d}.png"
        save_grey_png(np.round(smooth_field(rng) * 255).astype(np.uint8), real_root / name)
        files.append(name)
        ids.append(f"p{i:016x}")
        patients.append(f"patient{i // 2:03d}" if i < n_train else f"holdout{i:03d}")  # two images per patient
    train = write_table(
        prompt_rows(ids[:n_train], files[:n_train], patients[:n_train], "train"),
        tmp / "train.parquet",
        "prompts",
        producer="test",
    )
    holdout = write_table(
        prompt_rows(ids[n_train:], files[n_train:], patients[n_train:], "test"),
        tmp / "holdout.parquet",
        "prompts",
        producer="test",
    )
    world = World(tmp, tmp / "Results", real_root, train, holdout, build_tiny_reid(tmp / "reid.pth", seed=1))
    result = invoke(
        [
            "sample",
            "--results",
            str(world.results),
            "--model",
            world.model,
            "--run-id",
            world.run_id,
            "--prompts",
            str(train),
            "--real-root",
            str(real_root),
            "-n",
            str(n_sample),
            "--controls",
            str(controls),
            "--size",
            str(SIZE),
            "--progress",
            "none",
        ]
    )
    assert result.exit_code == 0, result.output
    sample_dir = world.results / world.model / world.run_id / "privacy-sample"
    sampled = read_table(sample_dir / "prompts.parquet", "prompts")
    _generations(world, sampled, gens, rng)
    # embeddings: the training pool + generations in the chain run, controls in <chain>-control, holdout in <run>
    embed = world.chain / "embed"
    write_space(embed / f"real-{EXTRACTOR}.parquet", ids[:n_train], [real_root / f for f in files[:n_train]], "real")
    gen = read_table(world.chain / "generate" / "images.parquet", "images")
    write_space(
        embed / f"synthetic-{EXTRACTOR}.parquet",
        gen["image_id"],
        [world.chain / "generate" / "images" / p for p in gen["path"]],
        "synthetic",
    )
    control = read_table(sample_dir / "control" / "images.parquet", "images")
    write_space(
        world.results / world.model / f"{world.run_id}.privacy-control" / "embed" / f"synthetic-{EXTRACTOR}.parquet",
        control["image_id"],
        [sample_dir / "control" / "images" / p for p in control["path"]],
        "synthetic",
    )
    write_space(
        world.results / world.model / world.run_id / "embed" / f"real-{EXTRACTOR}.parquet",
        ids[n_train:],
        [real_root / f for f in files[n_train:]],
        "real",
    )
    return world


def _generations(world: World, sampled: pd.DataFrame, gens: int, rng) -> None:
    """`gens` new images per sampled prompt; generation 0 of the first prompt is an exact copy of its source."""
    out = world.chain / "generate" / "images"
    rows = []
    for _, prompt in sampled.iterrows():
        for k in range(gens):
            name = f"{prompt['prompt_id']}-{k}.png"
            pixels = load_grey(world.real_root / prompt["image_path"]) if not rows else smooth_field(rng)
            save_grey_png(np.round(pixels * 255).astype(np.uint8), out / name)
            rows.append(
                {
                    "image_id": f"{prompt['prompt_id']}-{k}",
                    "prompt_id": prompt["prompt_id"],
                    "model": world.model,
                    "path": name,
                    "seed": 1000 + len(rows),
                    "sample_index": k,
                    "width": SIZE,
                    "height": SIZE,
                    "steps": 2,
                    "guidance": 4.5,
                    "dtype": "float32",
                    "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest(),
                }
            )
    write_table(
        pd.DataFrame(rows),
        world.chain / "generate" / "images.parquet",
        "images",
        producer="test",
        extra={"images_root": "images"},
    )
