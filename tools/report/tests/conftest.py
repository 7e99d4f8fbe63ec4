"""Fixtures: small run folders in the stages' real formats (report_world.py), and the CLI runner."""

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from report_world import build_run  # noqa: E402


@pytest.fixture
def results(tmp_path) -> Path:
    return tmp_path / "Results"


@pytest.fixture
def full_run(results):
    """Every stage but llava-report finished."""
    return build_run(results)


@pytest.fixture
def report_cli(monkeypatch):
    """Invoke chexbench-report; returns the Click result (stdout and stderr apart)."""
    from chexbench_report.cli import main

    monkeypatch.setenv("CHEXBENCH_PROGRESS", "none")

    def invoke(*args: str):
        return CliRunner().invoke(main, [str(a) for a in args])

    return invoke
