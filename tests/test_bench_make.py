"""`make bench`: the embedded default's command chain, and the clear refusal of a registry model that is not there."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-o", "setup", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_demo_chain_runs_every_stage_in_order_under_each_runner():
    for runner, prefix in (("local", ".venv/bin/chexbench-"), ("docker", "run --rm ")):
        out = make("-n", "bench", f"RUNNER={runner}", "RUN_ID=t1")
        assert out.returncode == 0, out.stderr
        text = out.stdout
        order = [text.index(f"{prefix}{stage}") for stage in ("generate", "embed", "fidelity")]
        assert order == sorted(order)
        assert "chexbench-bench demo-inputs --results Results --run-id t1" in text
        assert "--conditional" in text and "Results/demo/t1/fidelity" in text
        assert "--extractor inception --extractor raddino=Results/demo/t1/models/tiny-raddino" in text


def test_registry_model_without_weights_names_what_is_missing(tmp_path):
    out = make("bench", "MODEL=sana", f"RESULTS={tmp_path}")
    assert out.returncode != 0
    # first the plan: every asset of the run, its status, and the command that fetches what is missing
    assert (
        "make bench MODEL=sana loads" in out.stdout and "fetch what is missing: make weights MODEL=sana" in out.stdout
    )
    assert "sana: expected at" in out.stderr and "assets/checkpoints/sana" in out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())  # nothing started
