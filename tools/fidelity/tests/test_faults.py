"""Faults over a finished fidelity run: failed re-runs, bugs, a SIGKILL mid-run and a second process."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from chexbench_common.lock import FolderLock
from chexbench_fidelity.cli import main
from click.testing import CliRunner
from fidelity_data import poison
from test_cli import invoke, stage_dir


def _manifest(ds):
    return json.loads((stage_dir(ds) / "manifest.json").read_text())


def _collected(ds) -> int:
    out = ds.root / "board.csv"
    result = CliRunner().invoke(main, ["collect", "--results", str(ds.root / "Results"), "--out", str(out)])
    return 0 if result.exit_code else len(out.read_text().splitlines()) - 1


def test_failed_rerun_with_bad_inputs_leaves_nothing_collectable(dataset):
    assert invoke(dataset, *dataset.args()).exit_code == 0
    assert _collected(dataset) == 1
    poison(dataset.synth["raddino"], 3, np.nan)
    refused = invoke(dataset, *dataset.args())
    assert refused.exit_code == 4 and "row 4" in refused.stderr
    assert not (stage_dir(dataset) / "_SUCCESS").exists()
    assert _manifest(dataset)["status"] == "failed" and "row 4" in _manifest(dataset)["error"]
    assert _collected(dataset) == 0


def test_a_bug_marks_the_run_failed(dataset, monkeypatch):
    import chexbench_fidelity.kid as kid

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(kid, "kernel_inception_distance", broken)
    result = invoke(dataset, *dataset.args())
    assert result.exit_code == 1
    manifest = _manifest(dataset)
    assert manifest["status"] == "failed" and manifest["error"] == "ZeroDivisionError: division by zero"
    assert not (stage_dir(dataset) / "_SUCCESS").exists()


def test_sigkill_mid_run_then_rerun_completes(dataset):
    exe = Path(sys.executable).with_name("chexbench-fidelity")
    args = [str(exe), "run", "--results", str(dataset.root / "Results"), "--model", "m", "--run-id", "r1"]
    args += ["--cache-dir", str(dataset.root / "cache"), *dataset.args()]
    env = {**os.environ, "CHEXBENCH_FAULT": "fidelity:started"}
    killed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _manifest(dataset)["status"] == "running" and not (stage_dir(dataset) / "_SUCCESS").exists()
    assert _collected(dataset) == 0
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)  # the dead holder's lock is stale
    assert again.returncode == 0, again.stderr
    assert _manifest(dataset)["status"] == "success" and _collected(dataset) == 1


def test_second_process_on_the_folder_is_refused(dataset):
    assert invoke(dataset, *dataset.args()).exit_code == 0
    before = (stage_dir(dataset) / "manifest.json").read_bytes()
    with FolderLock(stage_dir(dataset)):
        busy = invoke(dataset, *dataset.args(), "--force")
    assert busy.exit_code == 7 and "is in use by process" in busy.stderr
    assert (stage_dir(dataset) / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("bad", ["-5", "0"])
def test_a_bad_number_is_a_usage_error(dataset, bad):
    result = invoke(dataset, *dataset.args(), "--nearest-k", bad)
    assert result.exit_code == 2 and "--nearest-k" in result.output
