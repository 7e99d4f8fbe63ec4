"""Vendi score: equal to the vendi-score package on the same features, in the stage overall, per pathology and per
prompt, with the real set beside it."""

import numpy as np
import pandas as pd
import pytest
from chexbench_fidelity.cli import main
from chexbench_fidelity.vendi import per_group_vendi, vendi_score
from chexbench_schema import CHEXPERT_LABELS, read_table
from click.testing import CliRunner
from vendi_score import vendi


@pytest.mark.parametrize("n, d", [(200, 16), (12, 40)])  # covariance form (d < n) and Gram form (d > n)
def test_vendi_equals_the_reference_package(n, d):
    x = np.random.default_rng(n).normal(size=(n, d)) + 0.3
    assert vendi_score(x) == pytest.approx(vendi.score_X(x), rel=1e-10)
    assert vendi_score(x) == pytest.approx(vendi.score_dual(x), rel=1e-10)


def test_weights_equal_repeated_rows_and_the_bounds_hold():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 8))
    w = rng.integers(0, 3, size=30)
    assert vendi_score(x, w) == pytest.approx(vendi.score_X(np.repeat(x, w, axis=0)), rel=1e-10)
    assert vendi_score(np.tile(x[:1], (10, 1)) * rng.uniform(1, 2, (10, 1))) == pytest.approx(1.0)  # one direction
    assert vendi_score(np.eye(6)) == pytest.approx(6.0)  # orthogonal samples: n


def test_per_prompt_vendi_detects_mode_collapse():
    rng = np.random.default_rng(2)
    diverse = rng.normal(size=(40, 16))
    collapsed = np.repeat(rng.normal(size=(4, 16)), 10, axis=0) + 1e-9 * rng.normal(size=(40, 16))
    prompts = np.repeat([f"p{i}" for i in range(4)], 10)
    codes, sizes, scores = per_group_vendi(diverse, prompts)
    assert list(codes) == ["p0", "p1", "p2", "p3"] and list(sizes) == [10] * 4
    np.testing.assert_allclose(scores, [vendi.score_X(diverse[10 * i : 10 * i + 10]) for i in range(4)], rtol=1e-10)
    assert scores.min() > 5 and per_group_vendi(collapsed, prompts)[2].max() < 1.001


def test_stage_writes_vendi_overall_per_pathology_and_per_prompt(dataset):
    args = ["run", "--results", str(dataset.root / "Results"), "--model", "m", "--run-id", "r1", "--no-cache"]
    args += [*dataset.args(), "--prompts", str(dataset.prompts), "--images", str(dataset.images)]
    result = CliRunner().invoke(main, [*args, "--conditional", "--pathology", "Edema", "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    out = dataset.root / "Results" / "m" / "r1" / "fidelity"
    frame = read_table(out / "metrics.parquet", "metrics")

    def row(metric, subset="all", extractor="raddino"):
        rows = frame[(frame.metric == metric) & (frame.subset == subset) & (frame.extractor == extractor)]
        assert len(rows) == 1
        return rows.iloc[0]

    xr, xs = (x.astype(np.float64) for x in dataset.vectors["raddino"])  # the package keeps float32 input in float32
    assert row("vendi").value == pytest.approx(vendi.score_X(xs), rel=1e-10)
    assert row("vendi_real").value == pytest.approx(vendi.score_X(xr), rel=1e-10)
    assert row("vendi").ci_low <= row("vendi").value <= row("vendi").ci_high
    pairs = [vendi.score_X(xs[2 * i : 2 * i + 2]) for i in range(60)]  # 2 images per prompt, in prompt order
    assert row("vendi_per_prompt").value == pytest.approx(np.mean(pairs), rel=1e-10)
    assert "mean over 60 prompts" in row("vendi_per_prompt").note
    pos = np.flatnonzero(dataset.labels[:, CHEXPERT_LABELS.index("Edema")] == 1)
    synth_pos = np.sort(np.r_[2 * pos, 2 * pos + 1])
    assert row("vendi", "Edema", "inception").value == pytest.approx(
        vendi.score_X(dataset.vectors["inception"][1][synth_pos].astype(np.float64)), rel=1e-10
    )
    board = pd.read_csv(out / "leaderboard.csv")
    assert board.loc[0, "Vendi (RadDino)"] == pytest.approx(row("vendi").value)
    assert board.loc[0, "Vendi real"] == pytest.approx(row("vendi_real", extractor="inception").value)
