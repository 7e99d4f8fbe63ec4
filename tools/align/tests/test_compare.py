"""The comparison behind `make test-align-himl` and `make test-bench-himl`: a NaN on one side is a difference, never a
pass; a real difference beyond the tolerance fails; equal runs pass."""

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chexbench_align.cli import main
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "himl"))
from align_compare import TOLERANCE, compare_runs, max_abs_diff  # noqa: E402


def test_a_nan_on_one_side_is_an_infinite_difference():
    assert max_abs_diff([0.5, np.nan], [0.5, 0.2], allow_nan=True) == math.inf
    assert max_abs_diff([0.5, 0.2], [0.5, np.nan], allow_nan=True) == math.inf
    assert max_abs_diff([0.5, np.nan], [0.5 + 1e-7, np.nan], allow_nan=True) == pytest.approx(1e-7)  # both empty
    assert max_abs_diff([np.nan], [np.nan], allow_nan=False) == math.inf  # a per-image score must be a number
    assert max_abs_diff([np.nan], [np.nan], allow_nan=True) == 0.0


@pytest.fixture(scope="module")
def run(world):
    result = CliRunner().invoke(main, world.args("--run-id", "cmp"), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return world.results / "m" / "cmp" / "align"


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "copy"))


def test_equal_runs_pass(run, tmp_path):
    ok, line = compare_runs(run, _copy(run, tmp_path))
    assert ok and "max |diff| 0" in line and "sha256 the same" in line


@pytest.mark.parametrize("column", ["value", "ci_low", "ci_high"])
def test_a_metric_nan_on_one_side_fails(run, tmp_path, column):
    other = _copy(run, tmp_path)
    metrics = pd.read_parquet(other / "metrics.parquet")
    row = metrics.index[(metrics["metric"] == "alignment") & (metrics["subset"] == "all")][0]
    assert not np.isnan(metrics.loc[row, column])
    metrics.loc[row, column] = np.nan
    metrics.to_parquet(other / "metrics.parquet")
    assert not compare_runs(run, other)[0]
    assert not compare_runs(other, run)[0]


def test_a_score_nan_on_one_side_fails(run, tmp_path):
    other = _copy(run, tmp_path)
    scores = pd.read_csv(other / "scores.csv")
    scores.loc[3, "score"] = np.nan
    scores.to_csv(other / "scores.csv", index=False)
    assert not compare_runs(run, other)[0]


def test_a_difference_beyond_the_tolerance_fails_and_within_passes(run, tmp_path):
    other = _copy(run, tmp_path)
    scores = pd.read_csv(run / "scores.csv")
    for shift, expected in ((TOLERANCE / 2, True), (TOLERANCE * 2, False)):
        scores.assign(score=scores["score"] + shift).to_csv(other / "scores.csv", index=False)
        assert compare_runs(run, other)[0] is expected


def test_different_rows_are_refused(run, tmp_path):
    other = _copy(run, tmp_path)
    metrics = pd.read_parquet(other / "metrics.parquet")
    metrics.iloc[1:].to_parquet(other / "metrics.parquet")
    with pytest.raises(ValueError, match="different rows"):
        compare_runs(run, other)
