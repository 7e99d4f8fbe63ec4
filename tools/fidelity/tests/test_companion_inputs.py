"""--train (the C_T data-copying test) and --prompt-samples (per-prompt Vendi) through the stage."""

import numpy as np
import pandas as pd
import pytest
from chexbench_fidelity.cli import main
from chexbench_fidelity.data_copying import data_copying_test
from chexbench_schema import read_table
from click.testing import CliRunner
from fidelity_data import correlated, images_table, write_emb
from vendi_score import vendi


def invoke(ds, *args):
    base = ["run", "--results", str(ds.root / "Results"), "--model", "m", "--run-id", "r1", "--no-cache"]
    return CliRunner().invoke(main, [*base, *ds.args(), *args])


def test_train_and_prompt_samples_give_c_t_and_per_prompt_vendi(dataset):
    rng = np.random.default_rng(11)
    xr, xs = dataset.vectors["inception"]
    train_vectors = correlated(rng, 300, 24)
    train_vectors[:100] = xs[:100] + 0.01 * rng.standard_normal((100, 24)).astype(np.float32)  # planted copies
    train = write_emb(
        dataset.root / "train-inception.parquet", [f"t{i}" for i in range(300)], train_vectors, "real", "inception"
    )
    sample_ids = images_table(dataset.root / "samples.parquet", dataset.prompt_ids[:12], 5)
    samples = correlated(rng, len(sample_ids), 8)
    samples[:5] = samples[0]  # the first prompt's five generations are one image: collapse
    sample_table = write_emb(dataset.root / "samples-raddino.parquet", sample_ids, samples, "synthetic", "raddino")
    result = invoke(
        dataset,
        "--train",
        str(train),
        "--prompt-samples",
        str(sample_table),
        "--prompt-samples-images",
        str(dataset.root / "samples.parquet"),
    )
    assert result.exit_code == 0, result.output
    out = dataset.root / "Results" / "m" / "r1" / "fidelity"
    frame = read_table(out / "metrics.parquet", "metrics").set_index(["metric", "extractor"])
    expected = data_copying_test(train_vectors, xr, xs, seed=0).statistic
    assert frame.loc[("C_T", "inception"), "value"] == pytest.approx(expected, rel=1e-12)
    assert frame.loc[("C_T", "inception"), "value"] < -3  # a third of the synthetic set copies training images
    assert ("C_T", "raddino") not in frame.index  # no training embeddings of that extractor
    per_prompt = [vendi.score_X(samples[5 * i : 5 * i + 5].astype(np.float64)) for i in range(12)]
    assert per_prompt[0] == pytest.approx(1.0)
    assert frame.loc[("vendi_per_prompt", "raddino"), "value"] == pytest.approx(np.mean(per_prompt), rel=1e-10)
    board = pd.read_csv(out / "leaderboard.csv")
    assert board.loc[0, "C_T"] == pytest.approx(expected) and "Vendi per prompt (RadDino)" in board


def test_companion_tables_must_match_their_extractor(dataset):
    other = write_emb(
        dataset.root / "t.parquet",
        ["a", "b"],
        np.ones((2, 24), np.float32),
        "real",
        "inception",
        weights_sha256="d" * 64,
    )
    result = invoke(dataset, "--train", str(other))
    assert result.exit_code == 3 and "weights_sha256 differs between --train" in result.stderr
    result = invoke(dataset, "--prompt-samples", str(dataset.synth["raddino"]))
    assert result.exit_code == 3 and "needs --prompt-samples-images" in result.stderr
    assert not (dataset.root / "Results" / "m" / "r1" / "fidelity" / "metrics.parquet").exists()
