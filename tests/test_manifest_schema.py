"""The run manifests real stage runs write satisfy the contract's manifest schema (shared_schema/schemas/manifest-*):
a finished import, a re-import refused by its inputs, embed's shards, their merge, and the merge superseded when a
shard is run again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from chexbench_schema import CHEXPERT_LABELS, write_table
from chexbench_schema.export import MANIFEST_SCHEMA_FILE
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL, RUN = "m", "r"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    """The exported file, as a reader in another language would take it (its match with the code is tested apart)."""
    schema = json.loads((ROOT / "shared_schema" / "schemas" / MANIFEST_SCHEMA_FILE).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _run(tmp: Path, *argv, code: int = 0) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CHEXBENCH_PROGRESS": "none", "CHEXBENCH_CACHE_DIR": str(tmp / "c")}
    for var in ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID"):
        env.pop(var, None)
    result = subprocess.run(
        [str(BIN / argv[0]), *map(str, argv[1:])], cwd=tmp, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == code, result.stderr


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _assert_valid(validator, manifest: dict, status: str) -> None:
    problems = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(manifest)]
    assert not problems, problems
    assert manifest["status"] == status


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Four grey PNGs, their prompts table and a CSV listing them by prompt_id."""
    tmp = tmp_path_factory.mktemp("manifests")
    rng = np.random.default_rng(0)
    (tmp / "png").mkdir()
    rows = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 32), dtype=np.uint8)).save(tmp / "png" / f"{i}.png")
        rows.append({"split": "test", "prompt_id": f"p{i:016x}", "prompt": f"finding {i}", "image_path": f"{i}.png"})
    prompts = pd.DataFrame(rows).assign(patient_id=None, study_id=None, id=None, view="PA")
    prompts = prompts.assign(**{label: None for label in CHEXPERT_LABELS})
    write_table(prompts, tmp / "prompts.parquet", "prompts", producer="test")
    listing = pd.DataFrame({"prompt_id": prompts["prompt_id"], "filename": prompts["image_path"]})
    listing.to_csv(tmp / "list.csv", index=False)
    (tmp / "broken.parquet").write_text("not a table\n")
    return tmp


def test_import_manifests_finished_and_refused(inputs, validator):
    where = ["--results", inputs / "R", "--model", MODEL, "--run-id", RUN]
    command = ["chexbench-generate", "import", "--csv", inputs / "list.csv", "--images-dir", inputs / "png", *where]
    _run(inputs, *command, "--prompts", inputs / "prompts.parquet")
    folder = inputs / "R" / MODEL / RUN / "generate"
    finished = _manifest(folder)
    _assert_valid(validator, finished, "success")
    assert finished["inputs"]["prompts"]["bytes"] == (inputs / "prompts.parquet").stat().st_size

    _run(inputs, *command, "--prompts", inputs / "broken.parquet", code=3)
    refused = _manifest(folder)
    _assert_valid(validator, refused, "failed")
    assert refused["error"] and refused["superseded_by_failed_run"]["command"][1] == "import"


def test_shard_merge_and_superseded_manifests(inputs, validator, monkeypatch):
    """In-process (torch is imported once): the same stage code, only `command` is pytest's own."""
    from chexbench_embed.cli import main
    from chexbench_embed.tiny import build_tiny_raddino
    from click.testing import CliRunner

    monkeypatch.setenv("CHEXBENCH_CACHE_DIR", str(inputs / "c"))
    for var in ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
    model = build_tiny_raddino(inputs / "tiny-raddino")
    where = ["--results", inputs / "R", "--model", MODEL, "--run-id", "sharded", "--progress", "none"]
    run = ["run", *where, "--prompts", inputs / "prompts.parquet", "--real-root", inputs / "png"]
    run += ["--extractor", f"raddino={model}", "--num-workers", "0", "--num-shards", "2"]

    def embed(*args) -> None:
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output

    for k in (0, 1):
        embed(*run, "--shard-index", k)
    embed("merge", *where)
    folder = inputs / "R" / MODEL / "sharded" / "embed"
    for k in (0, 1):
        shard = _manifest(folder / "parts" / f"shard-{k}-of-2")
        _assert_valid(validator, shard, "success")
        assert shard["stage"] == f"embed/parts/shard-{k}-of-2" and set(shard["weights"]) == {"raddino"}
    _assert_valid(validator, _manifest(folder), "success")

    embed(*run, "--shard-index", 0, "--force")  # a shard started again: the merged result stops counting
    superseded = _manifest(folder)
    _assert_valid(validator, superseded, "superseded")
    assert "superseded_by" in superseded and not (folder / "_SUCCESS").exists()
