"""Fixtures: finished stage folders written through the common stage lifecycle (metrics and embeddings tables as the
stages write them), and a plan of known-answer sets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chexbench_common.imageio import to_uint8
from chexbench_common.rundir import StageRun
from chexbench_schema import CHEXPERT_LABELS, write_embeddings, write_table
from PIL import Image

MODEL = "demo"
INCEPTION_SHA = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("CHEXBENCH_PROGRESS", "none")
    monkeypatch.setenv("CHEXBENCH_CACHE_DIR", str(tmp_path / "chexbench-cache"))


def finished_stage(results: Path, run_id: str, stage: str, files: dict[str, callable]) -> Path:
    """A finished stage folder: each `files` entry writes one output into the folder."""
    run = StageRun(results, MODEL, run_id, stage, tool_version="test")
    run.start({}, {})
    outputs = {name: write(run.dir) for name, write in files.items()}
    run.finish(outputs)
    return run.dir


def metrics_writer(rows: list[dict], run_id: str, stage: str):
    """rows: metric, value, ci_low, ci_high and optional extractor / subset / note."""

    def write(folder: Path) -> Path:
        frame = pd.DataFrame(
            [
                {
                    "run_id": run_id,
                    "model": MODEL,
                    "stage": stage,
                    "metric": r["metric"],
                    "subset": r.get("subset", "all"),
                    "extractor": r.get("extractor"),
                    "value": r["value"],
                    "ci_low": r.get("ci_low"),
                    "ci_high": r.get("ci_high"),
                    "n_real": 10,
                    "n_synth": 10,
                    "note": r.get("note"),
                }
                for r in rows
            ]
        )
        return write_table(frame, folder / "metrics.parquet", "metrics", producer="test", run_id=run_id)

    return write


def embeddings_writer(extractor: str, dim: int, sha256: str):
    def write(folder: Path) -> Path:
        frame = pd.DataFrame({"image_id": ["a", "b"], "source": "synthetic", "extractor": extractor})
        return write_embeddings(
            frame,
            np.zeros((2, dim), np.float32),
            folder / f"synthetic-{extractor}.parquet",
            producer="test",
            extractor=extractor,
            weights_sha256=sha256,
            preprocessing={},
            extra={"dim": dim},
        )

    return write


@pytest.fixture
def ladder(tmp_path):
    """Write a fidelity ladder (original + blur 1..4) with given FID values per extractor; returns (results, plan).

    Call: results, plan = ladder({"inception": [(value, lo, hi), ...5]}, dims={"raddino": 32})."""

    def make(values: dict[str, list[tuple]], dims: dict[str, int] | None = None, sha: dict[str, str] | None = None):
        results = tmp_path / "Results"
        out = tmp_path / "sets"
        out.mkdir(exist_ok=True)
        plan = []
        for level in range(5):
            control = "original" if level == 0 else "blur"
            set_id = "fidelity-original" if level == 0 else f"fidelity-blur-{level}"
            run_id = f"validate-{set_id}"
            plan.append((set_id, "fidelity", control, level, f"L{level}", "", run_id, ""))
            rows = [
                {"metric": "FID", "extractor": e, "value": v[level][0], "ci_low": v[level][1], "ci_high": v[level][2]}
                for e, v in values.items()
            ]
            finished_stage(results, run_id, "fidelity", {"metrics": metrics_writer(rows, run_id, "fidelity")})
            embeds = {
                e: embeddings_writer(e, (dims or {}).get(e, 2048), (sha or {}).get(e, INCEPTION_SHA)) for e in values
            }
            finished_stage(results, run_id, "embed", embeds)
        columns = ["set_id", "axis", "control", "level", "level_label", "strength", "run_id", "note"]
        pd.DataFrame(plan, columns=columns).to_csv(out / "plan.csv", index=False)
        return results, out / "plan.csv"

    return make


# A real adult chest CR from the pydicom-data package (installed --no-deps by `make setup`).
DICOM = Path(importlib.util.find_spec("data_store").submodule_search_locations[0]) / "data" / "RG1_UNCR.dcm"


@pytest.fixture(scope="session")
def real_pool(tmp_path_factory) -> tuple[Path, Path]:
    """A small real pool: 24 crops (different places and sizes) of the real chest CR, 96 px, two per patient, with
    their prompts table; returns (prompts table, images root)."""
    from chexbench_common.imageio import load_grey

    root = tmp_path_factory.mktemp("pool")
    (root / "real").mkdir()
    grey = load_grey(DICOM)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(24):
        side = int(min(grey.shape) * rng.uniform(0.35, 0.6))
        top, left = (int(rng.integers(0, s - side)) for s in grey.shape)
        crop = Image.fromarray(grey[top : top + side, left : left + side]).resize((96, 96), Image.Resampling.BICUBIC)
        name = f"crop{i:02d}.png"
        Image.fromarray(to_uint8(np.asarray(crop))).save(root / "real" / name)
        rows.append(
            {
                "split": "test",
                "prompt_id": f"p{i:02d}",
                "prompt": f"crop {i}",
                "patient_id": f"pt{i // 2}",
                "study_id": None,
                "id": None,
                "image_path": name,
                "view": "PA",
                **{label: None for label in CHEXPERT_LABELS},
            }
        )
    prompts = write_table(pd.DataFrame(rows), root / "prompts.parquet", "prompts", producer="test")
    return prompts, root / "real"
