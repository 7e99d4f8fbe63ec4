"""`make validate`'s command chain (a dry run): the pool, the split, each axis's sets through the ordinary stages,
then judge, the report page and the --strict gate."""

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


def test_embedded_default_chain(tmp_path):
    text = dry_run(f"RESULTS={tmp_path}")
    steps = [
        f"chexbench-bench validation-pool --results {tmp_path} --run-id validate",
        "chexbench-validate split",
        "chexbench-validate build fidelity",
        "chexbench-generate import",
        "chexbench-embed run",
        "chexbench-fidelity run",
        "chexbench-validate build reports",
        "chexbench-llava-report score",
        "chexbench-validate judge",
        "chexbench-report run",
        "--quiet --strict",
    ]
    where = [text.index(step) for step in steps]
    assert where == sorted(where)
    assert "--extractor inception --extractor raddino=" in text and "--bootstrap 200" in text
    assert f"--chexbert {tmp_path}/demo/validate/models/tiny-chexbert/chexbert.pth" in text


def test_registry_model_uses_the_pool_split_and_registry_pins(tmp_path):
    text = dry_run(f"RESULTS={tmp_path}", "MODEL=sana", f"PROMPTS={tmp_path}/prompts.parquet")
    assert "chexbench-bench assets check raddino" in text
    assert f"split --pool-prompts {tmp_path}/prompts.parquet" in text
    assert "--source pool" in text and "--registry assets/models.yml" in text
    assert "demo-inputs" not in text
