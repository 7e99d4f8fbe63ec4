"""The same report twice is the same page and JSON, byte for byte, and the same leaderboard: nothing in them comes
from the clock, the process, a global generator or the order of a set."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from report_world import run_args

# one process runs the report (forced) and the leaderboard, as `make bench` and `make leaderboard` do
BOTH = """
import json, sys
from chexbench_report.cli import main
run, board = json.loads(sys.argv[1]), json.loads(sys.argv[2])
main(run, standalone_mode=False)
main(board, standalone_mode=False)
"""
OUTPUTS = ("report/report.json", "report/report.html")
BOARD = ("leaderboard.csv", "leaderboard_conditional.csv")


def _outputs(full_run, board) -> dict[str, bytes]:
    found = {name: (full_run.dir / name).read_bytes() for name in OUTPUTS}
    return found | {name: (board / name).read_bytes() for name in BOARD if (board / name).exists()}


def test_the_same_report_twice_is_byte_identical(report_cli, results, full_run, tmp_path):
    board = ["leaderboard", "--results", str(results), "--out", str(tmp_path / "board")]
    np.random.seed(5)
    random.seed(5)
    assert report_cli(*run_args(results)).exit_code == 0
    assert report_cli(*board).exit_code == 0
    first = _outputs(full_run, tmp_path / "board")
    assert set(first) >= {*OUTPUTS, "leaderboard.csv"}
    # again in a process of its own, with another string-hash seed
    env = {**os.environ, "PYTHONHASHSEED": "2024", "CHEXBENCH_PROGRESS": "none"}
    command = [sys.executable, "-c", BOTH, json.dumps([*run_args(results), "--force"]), json.dumps(board)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    second = _outputs(full_run, tmp_path / "board")
    assert sorted(first) == sorted(second)
    for name, content in first.items():
        assert content == second[name], f"{name} differs between two identical runs"


def test_the_umap_map_twice_is_the_same_map(report_cli, results, full_run):
    pytest.importorskip("umap")  # requirements/dev.txt pins it: skipped only outside the CPU stack
    pages = []
    for state in (1, 2):  # other global generator states each time: the map's randomness is its own seed
        np.random.seed(state)
        random.seed(state)
        assert report_cli(*run_args(results), "--map", "umap", "--force").exit_code == 0
        pages.append(_outputs(full_run, full_run.dir / "no-board"))
    assert pages[0] == pages[1]
