"""MiFID: equal to torchmetrics' on the same features; planted copies raise it; bootstrap draws reuse candidates."""

import numpy as np
import pandas as pd
import pytest
import torch
from chexbench_fidelity.cli import main
from chexbench_fidelity.frechet import fit_gaussian, frechet_distance
from chexbench_fidelity.mifid import mifid, nearest_cosine
from chexbench_schema import read_table
from click.testing import CliRunner
from torchmetrics.image.mifid import MemorizationInformedFrechetInceptionDistance


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


def torchmetrics_mifid(real: np.ndarray, synth: np.ndarray) -> float:
    metric = MemorizationInformedFrechetInceptionDistance(feature=Identity())
    metric.update(torch.from_numpy(real.astype(np.float64)), real=True)
    metric.update(torch.from_numpy(synth.astype(np.float64)), real=False)
    return float(metric.compute())


def ours(real, synth):
    return mifid(frechet_distance(fit_gaussian(real), fit_gaussian(synth)), nearest_cosine(real, synth).mean_distance())


@pytest.mark.parametrize("copies", [0, 110])  # no copies: d̄ >= 0.1 (FID); planted copies: d̄ < 0.1 (FID / d̄)
def test_mifid_equals_torchmetrics(copies):
    rng = np.random.default_rng(copies)
    real = rng.normal(size=(120, 12)) + 0.5
    synth = rng.normal(size=(150, 12)) * 1.1 + 0.6
    synth[:copies] = real[:copies] * (1 + 1e-4 * rng.normal(size=(copies, 12)))
    real[5] = 0.0  # a zero-sum row is left out of the distance, as torchmetrics does
    near = nearest_cosine(real, synth, top=4, tile=32)  # tiles and candidate lists smaller than the sets
    assert (near.mean_distance() < 0.1) == (copies > 0)
    assert ours(real, synth) == pytest.approx(torchmetrics_mifid(real, synth), rel=1e-6)


def test_bootstrap_draws_equal_a_direct_computation_on_the_drawn_rows():
    rng = np.random.default_rng(3)
    real, synth = rng.normal(size=(40, 6)), rng.normal(size=(50, 6))
    near = nearest_cosine(real, synth, top=2)  # few candidates: some draws miss all of them
    for _ in range(20):
        w_real, w_synth = rng.integers(0, 3, 40), rng.integers(0, 2, 50)
        unit_real = real / np.linalg.norm(real, axis=1, keepdims=True)
        unit_synth = synth / np.linalg.norm(synth, axis=1, keepdims=True)
        direct = (1 - np.abs(unit_real @ unit_synth.T))[:, w_synth > 0].min(axis=1)
        assert near.mean_distance(w_real, w_synth) == pytest.approx(np.average(direct, weights=w_real), rel=1e-12)


def test_stage_writes_mifid_with_a_ci(dataset):
    args = ["run", "--results", str(dataset.root / "Results"), "--model", "m", "--run-id", "r1", "--no-cache"]
    result = CliRunner().invoke(main, [*args, *dataset.args(), "--images", str(dataset.images), "--bootstrap", "10"])
    assert result.exit_code == 0, result.output
    out = dataset.root / "Results" / "m" / "r1" / "fidelity"
    frame = read_table(out / "metrics.parquet", "metrics")
    row = frame[(frame.metric == "MiFID") & (frame.extractor == "inception")].iloc[0]
    xr, xs = dataset.vectors["inception"]
    assert row.value == pytest.approx(torchmetrics_mifid(xr, xs), rel=1e-6)
    assert row.ci_low <= row.value <= row.ci_high
    assert pd.read_csv(out / "leaderboard.csv").loc[0, "MiFID"] == pytest.approx(row.value)
