"""Helpers of the generate tests (importable by the test modules; conftest puts this folder on sys.path)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
from chexbench_schema import CHEXPERT_LABELS, write_table

PROMPT_TEXTS = (
    "frontal chest x-ray showing no acute cardiopulmonary process",
    "right lower lobe pneumonia with small pleural effusion",
    "cardiomegaly with mild pulmonary edema",
    "left sided pneumothorax, lungs otherwise clear",
    "support devices in place, atelectasis at the bases",
)


def prompt_id(text: str) -> str:
    return "p" + hashlib.sha256(text.encode()).hexdigest()[:16]


def make_prompts(path: Path, texts: list[str]) -> Path:
    frame = pd.DataFrame({"split": "test", "prompt_id": [prompt_id(t) for t in texts], "prompt": list(texts)})
    for column in ("patient_id", "study_id", "id", "image_path", "view", *CHEXPERT_LABELS):
        frame[column] = None
    return write_table(frame, path, "prompts", producer="tests")


def numbered_prompts(n: int) -> list[str]:
    return [f"{PROMPT_TEXTS[i % len(PROMPT_TEXTS)]} case {i}" for i in range(n)]


def sana_args(tiny, prompts: Path, results: Path, run_id: str = "r", *extra) -> list:
    """The common `run` arguments for the tiny Sana pipeline."""
    path, config = tiny("sana")
    return [
        "run",
        "--model",
        "sana",
        "--model-path",
        path,
        "--config",
        config,
        "--prompts",
        prompts,
        "--results",
        results,
        "--run-id",
        run_id,
        *extra,
    ]


def read_manifest(results: Path, model: str, run_id: str) -> dict:
    return json.loads((results / model / run_id / "generate" / "manifest.json").read_text())
