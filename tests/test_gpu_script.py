"""benchmarks/gpu.sh, the GPU figures script the lead runs when a GPU is lent: its --check mode runs every part's
code path on the CPU here, and its summary is checked on parts with known figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"
PARTS = ["bound", "embed", "classify", "llava-report", "generate"]


def fake_nvidia_smi(bindir: Path) -> None:
    """An nvidia-smi that reports 40 % then 80 % utilisation and exits (the real one samples until killed)."""
    bindir.mkdir()
    tool = bindir / "nvidia-smi"
    tool.write_text("#!/bin/sh\nprintf '40\\n80\\n'\n")
    tool.chmod(0o755)


def snapshot(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.exists() else {}


@pytest.mark.slow
@pytest.mark.system
def test_check_runs_every_part_into_its_own_folder(tmp_path):
    fake_nvidia_smi(tmp_path / "bin")
    results = ROOT / "benchmarks" / "results"
    before = snapshot(results)
    env = os.environ | {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "PYTHON": sys.executable}
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(SCRIPT), "--check", "--out", str(out)], env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "gpu.json").read_text())
    assert list(report["parts"]) == PARTS
    for name, part in report["parts"].items():
        assert part["exit_code"] == 0, (name, part)
        assert part["figures"], (name, part)
        assert part["gpu_utilisation_pct"] == 60.0, (name, part)  # mean of the samples taken while it ran
    figures = report["parts"]
    assert report["bf16_tflops"] > 0 and figures["bound"]["figures"]["bf16_tflops"] == report["bf16_tflops"]
    assert set(figures["embed"]["figures"]["raddino_img_per_s"]) == {"fp32", "bf16", "fp16"}
    classify = json.loads((out / "classify_gpu.json").read_text())
    for precision in ("fp32", "16-mixed"):
        expected = classify[precision]["tflops_achieved"] / report["bf16_tflops"]
        assert figures["classify"]["figures"][precision]["ratio_to_bf16_bound"] == pytest.approx(expected)
    assert set(figures["generate"]["figures"]) == {"sana", "pixart_sigma"}
    assert "| llava-report | 0 |" in (out / "gpu.md").read_text()
    assert snapshot(results) == before  # a check never writes into benchmarks/results


def test_summary_of_known_parts(tmp_path):
    """Utilisation means, ratios to the bound, a timed-out part and a part not run, from files with known values."""
    (tmp_path / "gpu-parts.tsv").write_text(
        "bound\t0\t3.0\t\nclassify\t0\t20.5\t\nllava-report\t124\t180.0\ttimed out after 180 s\n"
        "generate\t0\t0\tno weights: set SANA_DIR\n"
    )
    (tmp_path / "gpu_bound.json").write_text(json.dumps({"device": "Test GPU", "bf16_tflops": 500.0}))
    (tmp_path / "gpu-util-classify.txt").write_text("90\n100\n95\n")
    (tmp_path / "gpu-util-bound.txt").write_text("")
    (tmp_path / "classify_gpu.json").write_text(
        json.dumps({p: {"img_per_s": 1000.0, "tflops_achieved": 125.0} for p in ("fp32", "16-mixed")})
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_figures.py"), "summary", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    parts = json.loads((tmp_path / "gpu.json").read_text())["parts"]
    assert parts["classify"]["gpu_utilisation_pct"] == 95.0
    assert parts["classify"]["figures"]["16-mixed"] == {"img_per_s": 1000.0, "ratio_to_bf16_bound": 0.25}
    assert parts["bound"]["gpu_utilisation_pct"] is None
    assert parts["llava-report"]["exit_code"] == 124 and parts["llava-report"]["figures"] == {}
    assert parts["embed"]["note"] == "not run" and parts["embed"]["exit_code"] is None
    md = (tmp_path / "gpu.md").read_text()
    assert "Test GPU" in md and "timed out after 180 s" in md and "no weights: set SANA_DIR" in md


def test_without_a_gpu_says_so(tmp_path):
    env = os.environ | {"PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "no CUDA GPU" in done.stderr and "--check" in done.stderr
    done = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown option '--bogus'" in done.stderr
