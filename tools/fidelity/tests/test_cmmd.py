"""CMMD: equal to an independent numpy float64 computation of the paper's estimator on the same embeddings."""

import numpy as np
import pytest
from chexbench_fidelity.cmmd import cmmd


def reference_cmmd(x, y, sigma=10.0, scale=1000.0):
    """The paper's recipe written directly: full matrices, Gaussian RBF, V-statistic, ×1000 (float64)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def mean_kernel(a, b):
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d / (2 * sigma**2)).mean()

    return scale * (mean_kernel(x, x) + mean_kernel(y, y) - 2 * mean_kernel(x, y))


def unit(rng, n, d, shift=0.0):
    v = rng.normal(size=(n, d)) + shift
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)  # L2-normalised, as CLIP embeddings


@pytest.mark.parametrize("tile", [7, 64])  # several tiles per side (symmetric pairs counted twice) and one tile
def test_cmmd_equals_the_reference(tile):
    rng = np.random.default_rng(0)
    x, y = unit(rng, 50, 16), unit(rng, 40, 16, shift=0.3)
    ref = reference_cmmd(x, y)
    assert ref > 0.5
    assert cmmd(x, y, tile=tile)[0] == pytest.approx(ref, rel=1e-5)
    same = unit(rng, 40, 16)
    assert abs(cmmd(same, same, tile=tile)[0]) < 1e-6  # identical sets: 0


def test_weighted_rows_equal_repeating_the_samples():
    rng = np.random.default_rng(1)
    x, y = unit(rng, 30, 8), unit(rng, 25, 8, shift=0.2)
    wx, wy = rng.integers(0, 3, size=(4, 30)), rng.integers(1, 3, size=(4, 25))
    values = cmmd(x, y, weights_x=wx, weights_y=wy, tile=9)
    for b in range(4):
        expected = reference_cmmd(np.repeat(x, wx[b], axis=0), np.repeat(y, wy[b], axis=0))
        assert values[b] == pytest.approx(expected, rel=1e-5)


def test_stage_writes_cmmd_on_clip_embeddings_overall_and_per_pathology(tmp_path):
    from chexbench_fidelity.cli import main
    from chexbench_schema import CHEXPERT_LABELS, read_table
    from click.testing import CliRunner
    from fidelity_data import images_table, prompts_table, write_emb

    rng = np.random.default_rng(5)
    labels = np.zeros((40, len(CHEXPERT_LABELS)))
    labels[:25, CHEXPERT_LABELS.index("Edema")] = 1
    pids = prompts_table(tmp_path / "prompts.parquet", labels)
    iids = images_table(tmp_path / "images.parquet", pids, 1)
    xr, xs = unit(rng, 40, 12), unit(rng, 40, 12, shift=0.2)
    real = write_emb(tmp_path / "real-clip.parquet", pids, xr, "real", "clip")
    synth = write_emb(tmp_path / "synthetic-clip.parquet", iids, xs, "synthetic", "clip")
    args = ["run", "--results", str(tmp_path / "R"), "--model", "m", "--no-cache", "--real", str(real)]
    args += ["--synth", str(synth), "--prompts", str(tmp_path / "prompts.parquet")]
    args += ["--images", str(tmp_path / "images.parquet"), "--conditional", "--pathology", "Edema", "--bootstrap", "20"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    frame = read_table(tmp_path / "R" / "m" / "default" / "fidelity" / "metrics.parquet", "metrics")
    rows = frame[frame.metric == "CMMD"].set_index("subset")
    assert rows.loc["all", "value"] == pytest.approx(reference_cmmd(xr, xs), rel=1e-5)
    assert rows.loc["Edema", "value"] == pytest.approx(reference_cmmd(xr[:25], xs[:25]), rel=1e-5)
    assert rows.loc["all", "ci_low"] <= rows.loc["all", "value"] <= rows.loc["all", "ci_high"]
