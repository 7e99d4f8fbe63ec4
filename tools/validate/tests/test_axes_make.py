"""`make validate`'s chain for the privacy, utility and alignment axes (a dry run): the pool of pseudo-patients split
three ways, each axis's sets through the ordinary stages, before the judgement."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def dry_run(*args: str) -> str:
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "setup", "validate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_privacy_utility_and_alignment_run_through_their_stages_before_the_judge(tmp_path):
    text = dry_run(f"RESULTS={tmp_path}")
    assert "--split reference=0.5 --split holdout=0.25 --split unseen=0.25" in text
    steps = [
        "chexbench-privacy sample",
        "chexbench-validate build privacy",
        "--run-id validate-privacy-all",
        "chexbench-privacy run",
        "chexbench-validate build utility",
        "chexbench-classify run",
        "chexbench-validate build alignment",
        "chexbench-align run",
        "chexbench-validate judge",
    ]
    where = [text.index(step) for step in steps]
    assert where == sorted(where)
    assert f"--reid-weights {tmp_path}/demo/validate/models/tiny-reid.pth" in text
    assert "--setting all_synthetic" in text and "--no-conditional" in text
    assert "--controls 32" in text and "-n 32" in text


def test_a_registry_model_checks_the_reid_and_biovil_weights(tmp_path):
    text = dry_run(f"RESULTS={tmp_path}", "MODEL=sana", f"PROMPTS={tmp_path}/prompts.parquet")
    assert "assets check reid" in text and "assets check biovil-t" in text
    assert "tiny-reid" not in text and "--controls 500" in text
