"""Fixtures: a tiny random rad-dino-like folder, small image sets and their images/prompts tables, a CLI runner."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chexbench_embed.cli import main
from chexbench_schema import CHEXPERT_LABELS, write_table
from click.testing import CliRunner
from PIL import Image


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    """Keep every cache variable configure_caches() would set inside the test's folder."""
    for var in ("HF_HOME", "TORCH_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        monkeypatch.setenv(var, str(tmp_path / "env-cache" / var))
    monkeypatch.setenv("CHEXBENCH_CACHE_DIR", str(tmp_path / "chexbench-cache"))
    monkeypatch.setenv("CHEXBENCH_PROGRESS", "none")
    for var in ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def tiny_raddino(tmp_path_factory) -> Path:
    from chexbench_embed.tiny import build_tiny_raddino

    return build_tiny_raddino(tmp_path_factory.mktemp("models") / "tiny-raddino")


@pytest.fixture(scope="session")
def tiny_dinov2(tmp_path_factory, tiny_raddino) -> Path:
    """The same weights with a DINOv2-style processor: ImageNet mean/std per channel, resize 64 then crop 56."""
    import shutil

    from transformers import BitImageProcessorPil

    folder = tmp_path_factory.mktemp("models") / "tiny-dinov2"
    shutil.copytree(tiny_raddino, folder)
    BitImageProcessorPil(
        size={"shortest_edge": 64},
        crop_size={"height": 56, "width": 56},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    from chexbench_embed.tiny import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def save_images(root: Path, count: int, seed: int = 0) -> list[str]:
    """`count` grey images of different sizes and formats (8-bit PNG, 16-bit PNG, JPEG); returns relative paths."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        h, w = 60 + 9 * i, 48 + 5 * i  # portrait, like most chest X-rays
        smooth = np.add.outer(np.linspace(0, 1, h), np.linspace(0, 0.5, w)) / 1.5
        grey = np.clip(smooth + 0.2 * rng.random((h, w)), 0, 1)
        kind = i % 3
        name = f"img{i}.{'jpg' if kind == 2 else 'png'}"
        if kind == 1:
            Image.fromarray(np.round(grey * 65535).astype(np.uint16)).save(root / name)
        else:
            Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(root / name, quality=95)
        names.append(name)
    return names


def prompt_id(i: int) -> str:
    return f"p{i:016x}"


def write_images_table(path: Path, root: Path, names: list[str]) -> Path:
    rows = []
    for i, name in enumerate(names):
        with Image.open(root / name) as img:
            width, height = img.size
        rows.append(
            {
                "image_id": f"{prompt_id(i)}-0",
                "prompt_id": prompt_id(i),
                "model": "test",
                "path": name,
                "seed": i,
                "sample_index": 0,
                "width": width,
                "height": height,
                "steps": None,
                "guidance": None,
                "dtype": None,
                "sha256": hashlib.sha256((root / name).read_bytes()).hexdigest(),
            }
        )
    return write_table(pd.DataFrame(rows), path, "images", producer="test")


def write_prompts_table(path: Path, names: list[str | None]) -> Path:
    rows = [
        {
            "split": "test",
            "prompt_id": prompt_id(i),
            "prompt": f"finding {i}",
            "patient_id": None,
            "study_id": None,
            "id": None,
            "image_path": name,
            "view": "PA",
            **{label: None for label in CHEXPERT_LABELS},
        }
        for i, name in enumerate(names)
    ]
    return write_table(pd.DataFrame(rows), path, "prompts", producer="test")


@pytest.fixture
def image_sets(tmp_path) -> dict:
    """Four real and four synthetic images with their tables."""
    real_root, synth_root = tmp_path / "real", tmp_path / "synth"
    real_names, synth_names = save_images(real_root, 4, seed=1), save_images(synth_root, 4, seed=2)
    prompts = write_prompts_table(tmp_path / "prompts.parquet", real_names)
    images = write_images_table(tmp_path / "images.parquet", synth_root, synth_names)
    return {
        "real_root": real_root,
        "real_names": real_names,
        "prompts": prompts,
        "synth_root": synth_root,
        "synth_names": synth_names,
        "images": images,
        "real": ["--prompts", prompts, "--real-root", real_root],  # command-line options for each set
        "synthetic": ["--images", images, "--images-root", synth_root],
    }


@pytest.fixture
def embed(tmp_path):
    """Run `chexbench-embed ARGS...` in-process with --results under tmp_path; returns the Click result."""

    def invoke(*args: str):
        command, rest = args[0], [str(a) for a in args[1:]]
        return CliRunner().invoke(main, [command, "--results", str(tmp_path / "Results"), *rest])

    return invoke


@pytest.fixture
def make():
    """The table and image writers above, for tests that build their own sets."""
    from types import SimpleNamespace

    return SimpleNamespace(
        images=save_images, images_table=write_images_table, prompts_table=write_prompts_table, prompt_id=prompt_id
    )
