"""Every stage: a re-run refused by its inputs removes the previous result's outputs, as the lifecycle promises (the
manifest says failed, and no old table is left to look current to anyone who opens the folder).

Each case plants a finished result (manifest `success` naming its outputs, _SUCCESS, the output files) and runs the
stage's real command on an input it refuses after taking the folder (a table that is not a table, weights that are
not weights), as a user re-running with a broken file would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
MODEL, RUN = "m", "r"


def _cases(tmp: Path) -> dict[str, tuple[str, list[str], list[str]]]:
    """name -> (stage folder, output files, command line); `bad.parquet` is text, `bad.pt` is not a checkpoint."""
    bad, weights, empty = str(tmp / "bad.parquet"), str(tmp / "bad.pt"), str(tmp / "empty")
    where = ["--results", str(tmp / "R"), "--model", MODEL, "--run-id", RUN]
    return {
        "generate import": (
            "generate",
            ["images.parquet", "unmatched.csv"],
            ["chexbench-generate", "import", "--csv", str(tmp / "list.csv"), "--prompts", bad, *where],
        ),
        "embed run": (
            "embed",
            ["real-radiomics.parquet"],
            ["chexbench-embed", "run", *where, "--prompts", bad, "--real-root", empty, "--extractor", "radiomics"],
        ),
        "fidelity run": (
            "fidelity",
            ["metrics.parquet", "leaderboard.csv", "leaderboard_conditional.csv"],
            ["chexbench-fidelity", "run", *where, "--real", bad, "--synth", bad, "--no-conditional"],
        ),
        "align run": (
            "align",
            ["metrics.parquet", "alignment.csv"],
            [
                "chexbench-align",
                "run",
                *where,
                "--prompts",
                bad,
                "--images",
                bad,
                "--images-root",
                empty,
                "--image-weights",
                weights,
                "--text-model",
                empty,
                "--device",
                "cpu",
            ],
        ),  # fmt: skip
        "privacy sample": (
            "privacy-sample",
            ["prompts.parquet"],
            ["chexbench-privacy", "sample", *where, "--prompts", bad, "--real-root", empty],
        ),
        "privacy run": (
            "privacy",
            ["metrics.parquet", "privacy_metrics.csv"],
            [
                "chexbench-privacy",
                "run",
                *where,
                "--train-prompts",
                bad,
                "--holdout-prompts",
                bad,
                "--real-root",
                empty,
                "--reid-weights",
                weights,
                "--device",
                "cpu",
            ],
        ),  # fmt: skip
        "classify run": (
            "classify",
            ["metrics.parquet", "predictions.parquet"],
            [
                "chexbench-classify",
                "run",
                *where,
                "--train-prompts",
                bad,
                "--test-prompts",
                bad,
                "--real-root",
                empty,
                "--images",
                bad,
                "--images-root",
                empty,
            ],
        ),  # fmt: skip
        "llava-report score": (
            "llava-report",
            ["metrics.parquet", "per_sample.csv"],
            ["chexbench-llava-report", "score", *where, "--predictions", f"p100={bad}", "--device", "cpu"],
        ),
        "report run": (
            "report",
            ["report.html", "report.json"],
            ["chexbench-report", "run", *where],
        ),
    }


def _plant_finished(folder: Path, outputs: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in outputs:
        (folder / name).write_text("the previous run's result\n")
    manifest = {"status": "success", "stage": folder.name, "outputs": {name: name for name in outputs}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "_SUCCESS").write_text("done\n")


CASES = list(_cases(Path("/")))


@pytest.mark.parametrize("case", CASES)
def test_a_refused_rerun_removes_the_previous_outputs(tmp_path, case):
    stage, outputs, argv = _cases(tmp_path)[case]
    (tmp_path / "bad.parquet").write_text("not a table\n")
    (tmp_path / "bad.pt").write_text("not weights\n")
    (tmp_path / "list.csv").write_text("prompt,file\nno effusion,a.png\n")
    (tmp_path / "empty").mkdir()
    if case == "report run":  # the report's input is the run folder: a stage manifest that is not JSON
        (tmp_path / "R" / MODEL / RUN / "fidelity").mkdir(parents=True)
        (tmp_path / "R" / MODEL / RUN / "fidelity" / "manifest.json").write_text("{not json")
    folder = tmp_path / "R" / MODEL / RUN / stage
    _plant_finished(folder, outputs)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CHEXBENCH_PROGRESS": "none", "CHEXBENCH_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode in (3, 4, 5), (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    left = [name for name in outputs if (folder / name).exists()]
    assert not left, f"{case} left {left} after: {result.stderr}"
    assert not (folder / "_SUCCESS").exists()
    assert json.loads((folder / "manifest.json").read_text())["status"] == "failed"
