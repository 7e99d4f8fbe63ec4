"""chexbench-fidelity end to end: outputs, conditional groups, caching, collect, and every refused input."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from chexbench_fidelity.cli import main
from chexbench_fidelity.frechet import fit_gaussian, frechet_distance
from chexbench_fidelity.inception_score import inception_score
from chexbench_fidelity.kid import kernel_inception_distance
from chexbench_schema import CHEXPERT_LABELS, read_embeddings, read_table
from chexbench_schema import ORIGINAL_LEADERBOARD_COLUMNS as ORIGINAL_COLUMNS
from click.testing import CliRunner
from fidelity_data import correlated, images_table, poison, prompts_table, write_emb


def invoke(ds, *args, model="m", run_id="r1"):
    base = [
        "run",
        "--results",
        str(ds.root / "Results"),
        "--model",
        model,
        "--run-id",
        run_id,
        "--cache-dir",
        str(ds.root / "cache"),
    ]
    return CliRunner().invoke(main, [*base, *args])


def stage_dir(ds, model="m", run_id="r1"):
    return ds.root / "Results" / model / run_id / "fidelity"


def metrics(ds, **kw) -> pd.DataFrame:
    return read_table(stage_dir(ds, **kw) / "metrics.parquet", "metrics")


def value(frame, metric, subset="all", extractor=None):
    rows = frame[(frame.metric == metric) & (frame.subset == subset)]
    if extractor:
        rows = rows[rows.extractor == extractor]
    assert len(rows) == 1
    return rows.iloc[0]


def test_unconditional_run_writes_metrics_leaderboard_and_manifest(dataset):
    result = invoke(dataset, *dataset.args())
    assert result.exit_code == 0, result.output
    out = stage_dir(dataset)
    assert (out / "_SUCCESS").exists()
    assert "P/R/D/C + KID raddino/all: 3/3 tiles" in result.stderr  # the main pass reports progress
    frame = metrics(dataset)
    xr, xs = dataset.vectors["inception"]
    assert value(frame, "FID", extractor="inception").value == pytest.approx(
        frechet_distance(fit_gaussian(xr), fit_gaussian(xs)), rel=1e-12
    )
    kid = kernel_inception_distance(xr, xs, seed=0)
    assert value(frame, "KID", extractor="inception").value == pytest.approx(kid.mean, rel=1e-12)
    std = value(frame, "KID_std", extractor="inception")  # 60 and 120 samples fit in one subset of 1000
    assert np.isnan(std.value) and "KID std unavailable: both sets (60 real, 120 synthetic)" in std.note
    assert set(frame[frame.extractor == "raddino"].metric) >= {"precision", "recall", "density", "coverage"}
    assert "precision" not in set(frame[frame.extractor == "inception"].metric)  # P/R/D/C on RAD-DINO by default
    rr, rs = dataset.vectors["raddino"]  # KID fused into the P/R/D/C pass there: the standalone value, to rounding
    assert value(frame, "KID", extractor="raddino").value == pytest.approx(
        kernel_inception_distance(rr, rs, seed=0).mean, rel=1e-6
    )
    assert np.isnan(value(frame, "IS").value) and "no --synth-logits" in value(frame, "IS").note
    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board.columns[: len(ORIGINAL_COLUMNS)]) == list(ORIGINAL_COLUMNS)
    assert board.loc[0, "FID"] == pytest.approx(value(frame, "FID", extractor="inception").value)
    assert board.loc[0, "FID (RadDino)"] == pytest.approx(value(frame, "FID", extractor="raddino").value)
    assert board.loc[0, "Precision"] == pytest.approx(value(frame, "precision").value)
    assert (board.loc[0, "N Real"], board.loc[0, "N Synthetic"]) == (60, 120)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "success" and manifest["cache"]["misses"] == 2

    again = invoke(dataset, *dataset.args())
    assert again.exit_code == 0 and "up to date" in again.stderr
    forced = invoke(dataset, *dataset.args(), "--force")
    assert forced.exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["cache"]["hits"] == 2  # √Σ_real from the cache
    assert metrics(dataset).value.equals(frame.value)


def test_inputs_are_found_in_the_embed_stage_folder(dataset):
    embed = dataset.root / "Results" / "m" / "r1" / "embed"
    embed.mkdir(parents=True)
    for side, paths in (("real", dataset.real), ("synthetic", dataset.synth)):
        for name, path in paths.items():
            (embed / f"{side}-{name}.parquet").write_bytes(path.read_bytes())
    assert invoke(dataset).exit_code == 0
    assert set(metrics(dataset).extractor.dropna()) == {"inception", "raddino", "inception-logits"}
    # conditional mode takes the prompts and images tables embed read, from its manifest
    inputs = {name: {"path": str(getattr(dataset, name))} for name in ("prompts", "images")}
    (embed / "manifest.json").write_text(json.dumps({"inputs": inputs}))
    result = invoke(dataset, "--conditional", "--force")
    assert result.exit_code == 0, result.output
    assert "Edema" in set(metrics(dataset).subset)


def test_conditional_groups_follow_labels_through_prompt_ids(dataset):
    result = invoke(
        dataset, *dataset.args(), "--conditional", "--prompts", str(dataset.prompts), "--images", str(dataset.images)
    )
    assert result.exit_code == 0, result.output
    assert "empty group" in result.stderr and "Fracture" in result.stderr
    frame = metrics(dataset)
    for j, label in enumerate(CHEXPERT_LABELS):
        positive = int((dataset.labels[:, j] == 1).sum())
        row = value(frame, "FID", label, "inception")
        assert (row.n_real, row.n_synth) == (positive, 2 * positive)  # 2 images per prompt, uncertain -1 excluded
    empty = value(frame, "FID", "Fracture", "inception")
    assert np.isnan(empty.value) and "empty group" in empty.note
    small = value(frame, "FID", "Atelectasis", "inception")
    assert "unstable: n < d" in small.note  # d = 24 > 20 positive prompts
    assert np.isfinite(value(frame, "KID", "Atelectasis", "inception").value)
    xr, xs = dataset.vectors["raddino"]
    j = CHEXPERT_LABELS.index("Edema")
    pos = np.flatnonzero(dataset.labels[:, j] == 1)
    expected = frechet_distance(fit_gaussian(xr[pos]), fit_gaussian(xs[np.sort(np.r_[2 * pos, 2 * pos + 1])]))
    assert value(frame, "FID", "Edema", "raddino").value == pytest.approx(expected, rel=1e-10)
    board = pd.read_csv(stage_dir(dataset) / "leaderboard_conditional.csv")
    assert list(board.columns[: len(ORIGINAL_COLUMNS) + 1]) == [*ORIGINAL_COLUMNS, "Pathology"]
    assert list(board.Pathology) == list(CHEXPERT_LABELS)


def test_labels_come_from_prompt_ids_not_prompt_text(tmp_path):
    labels = np.zeros((20, len(CHEXPERT_LABELS)))
    labels[:10, CHEXPERT_LABELS.index("Edema")] = 1
    texts = ["same words"] * 20  # identical text, different labels: only prompt_id can tell them apart
    pids = prompts_table(tmp_path / "prompts.parquet", labels, texts)
    iids = images_table(tmp_path / "images.parquet", pids, 1)
    rng = np.random.default_rng(0)
    real = write_emb(tmp_path / "r.parquet", pids, correlated(rng, 20, 4), "real", "raddino")
    synth = write_emb(tmp_path / "s.parquet", iids, correlated(rng, 20, 4), "synthetic", "raddino")
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--results",
            str(tmp_path / "R"),
            "--model",
            "m",
            "--no-cache",
            "--real",
            str(real),
            "--synth",
            str(synth),
            "--conditional",
            "--no-unconditional",
            "--pathology",
            "Edema",
            "--prompts",
            str(tmp_path / "prompts.parquet"),
            "--images",
            str(tmp_path / "images.parquet"),
        ],
    )
    assert result.exit_code == 0, result.output
    row = value(read_table(tmp_path / "R/m/default/fidelity/metrics.parquet", "metrics"), "FID", "Edema")
    assert (row.n_real, row.n_synth) == (10, 10)


def test_options_equal_n_fd_inf_bootstrap_and_logits(dataset):
    rng = np.random.default_rng(1)
    logits = write_emb(
        dataset.root / "logits.parquet",
        dataset.image_ids,
        rng.standard_normal((120, 1008)) * 2,
        "synthetic",
        "inception-logits",
    )
    args = [
        *dataset.args(),
        "--equal-n",
        "--fd-inf",
        "--bootstrap",
        "8",
        "--synth-logits",
        str(logits),
        "--images",
        str(dataset.images),
    ]
    assert invoke(dataset, *args).exit_code == 0
    frame = metrics(dataset)
    fid = value(frame, "FID", extractor="raddino")
    assert fid.n_real == fid.n_synth == 60
    assert fid.ci_low < fid.value < fid.ci_high and "8 prompt-bootstrap replicates" in fid.note
    prec = value(frame, "precision")
    assert 0 <= prec.ci_low <= prec.value <= prec.ci_high <= 1
    assert np.isfinite(value(frame, "FD_inf", extractor="raddino").value)  # d=8: subsets from 32 of 60
    fd_inf = value(frame, "FD_inf", extractor="inception")  # d=24: 4·d = 96 > 60 samples
    assert np.isnan(fd_inf.value) and "at least 4·d = 96 samples" in fd_inf.note
    assert value(frame, "IS").value > 1 and value(frame, "IS").n_synth == 120
    board = pd.read_csv(stage_dir(dataset) / "leaderboard.csv")
    assert board.loc[0, "Inception Score"] == pytest.approx(value(frame, "IS").value)
    first = frame.set_index(["metric", "extractor"]).ci_low
    assert invoke(dataset, *args, "--force").exit_code == 0  # seeded: same intervals
    assert metrics(dataset).set_index(["metric", "extractor"]).ci_low.equals(first)


def test_fd_inf_never_changes_the_fid_and_kid_std_needs_real_subsets(dataset):
    args = [*dataset.args(), "--kid-subset-size", "40"]
    assert invoke(dataset, *args, run_id="plain").exit_code == 0
    assert invoke(dataset, *args, "--fd-inf", run_id="fdinf").exit_code == 0
    plain, fdinf = metrics(dataset, run_id="plain"), metrics(dataset, run_id="fdinf")
    for extractor in ("inception", "raddino"):
        assert value(plain, "FID", extractor=extractor).value == value(fdinf, "FID", extractor=extractor).value
    xr, xs = dataset.vectors["inception"]
    kid = kernel_inception_distance(xr, xs, subset_size=40, seed=0)
    assert value(plain, "KID_std", extractor="inception").value == pytest.approx(kid.std, rel=1e-12)


def test_fd_inf_refuses_subsets_small_relative_to_d():
    from chexbench_fidelity.frechet import fd_infinity, psd_sqrt

    rng = np.random.default_rng(0)
    real, synth = rng.standard_normal((400, 16)), rng.standard_normal((60, 16))
    g = fit_gaussian(real)
    with pytest.raises(ValueError, match=r"at least 4·d = 64 samples \(d=16\).* 60 synthetic"):
        fd_infinity(g, psd_sqrt(g.cov), synth)
    fit = fd_infinity(g, psd_sqrt(g.cov), rng.standard_normal((300, 16)))
    assert fit.sizes[0] >= 64 and fit.sizes[-1] == 300


def test_caption_type_column_follows_extra_info(dataset):
    import pyarrow.parquet as pq

    table = pq.read_table(dataset.prompts)
    meta = json.loads(table.schema.metadata[b"chexbench"])
    meta["extra"]["caption_column"] = "annotated_prompt"
    pq.write_table(table.replace_schema_metadata({b"chexbench": json.dumps(meta)}), dataset.prompts)
    args = [*dataset.args(), "--prompts", str(dataset.prompts), "--images", str(dataset.images), "--conditional"]
    assert invoke(dataset, *args).exit_code == 0
    for name in ("leaderboard.csv", "leaderboard_conditional.csv"):
        board = pd.read_csv(stage_dir(dataset) / name)
        columns = list(board.columns)
        assert columns.index("Caption Type") == columns.index("Extra Info") + 1
        assert set(board["Caption Type"]) == {"annotated_prompt"}
    assert invoke(dataset, *args, "--caption-type", "findings", run_id="r2").exit_code == 0
    assert set(pd.read_csv(stage_dir(dataset, run_id="r2") / "leaderboard.csv")["Caption Type"]) == {"findings"}


def test_collect_merges_finished_runs(dataset):
    for model in ("a", "b"):
        assert invoke(dataset, *dataset.args(), model=model).exit_code == 0
    (dataset.root / "Results" / "c" / "r1" / "fidelity").mkdir(parents=True)  # unfinished run: no _SUCCESS
    out = dataset.root / "board.csv"
    result = CliRunner().invoke(main, ["collect", "--results", str(dataset.root / "Results"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    merged = pd.read_csv(out)
    assert sorted(merged.Model) == ["a", "b"] and list(merged.columns[: len(ORIGINAL_COLUMNS)]) == list(
        ORIGINAL_COLUMNS
    )
    empty = CliRunner().invoke(main, ["collect", "--results", str(dataset.root / "nothing"), "--out", str(out)])
    assert empty.exit_code == 3 and "no finished fidelity run" in empty.stderr


def assert_refused(ds, result, code, *fragments):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chexbench-fidelity: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    out = stage_dir(ds)
    assert not (out / "metrics.parquet").exists() and not (out / "leaderboard.csv").exists()


def test_non_finite_vectors_are_refused(dataset):
    poison(dataset.synth["raddino"], 3, np.inf)
    assert_refused(dataset, invoke(dataset, *dataset.args()), 4, "row 4", "NaN or infinite")


def test_dimension_mismatch_is_refused(dataset):
    rng = np.random.default_rng(0)
    write_emb(dataset.synth["raddino"], dataset.image_ids, rng.standard_normal((120, 9)), "synthetic", "raddino")
    assert_refused(dataset, invoke(dataset, *dataset.args()), 3, "dimension mismatch for raddino", "d=8", "d=9")


def test_extractor_mismatch_is_refused(dataset):
    args = ["--real", str(dataset.real["inception"]), "--synth", str(dataset.synth["raddino"])]
    assert_refused(dataset, invoke(dataset, *args), 3, "extractor mismatch", "'inception'", "raddino")
    rng = np.random.default_rng(0)
    other = write_emb(
        dataset.root / "other.parquet",
        dataset.image_ids,
        rng.standard_normal((120, 8)),
        "synthetic",
        "raddino",
        weights_sha256="d" * 64,
    )
    args = ["--real", str(dataset.real["raddino"]), "--synth", str(other)]
    assert_refused(dataset, invoke(dataset, *args), 3, "extractor mismatch for raddino", "weights_sha256")


def test_too_few_samples_are_refused(dataset):
    rng = np.random.default_rng(0)
    tiny = write_emb(
        dataset.root / "tiny.parquet", dataset.image_ids[:4], rng.standard_normal((4, 8)), "synthetic", "raddino"
    )
    args = ["--real", str(dataset.real["raddino"]), "--synth", str(tiny)]
    assert_refused(
        dataset, invoke(dataset, *args), 3, "fewer samples than precision/recall/density/coverage need", "k=5"
    )
    one = write_emb(
        dataset.root / "one.parquet", dataset.image_ids[:1], rng.standard_normal((1, 24)), "synthetic", "inception"
    )
    args = ["--real", str(dataset.real["inception"]), "--synth", str(one)]
    assert_refused(dataset, invoke(dataset, *args), 3, "fewer samples than FID and KID need")
    logits = write_emb(
        dataset.root / "logits.parquet",
        dataset.image_ids[:7],
        rng.standard_normal((7, 1008)),
        "synthetic",
        "inception-logits",
    )
    args = [*dataset.args(), "--synth-logits", str(logits)]
    assert_refused(dataset, invoke(dataset, *args), 3, "fewer samples than the Inception Score needs (10 splits)", "7")


def test_empty_requested_pathology_is_refused(dataset):
    args = [
        *dataset.args(),
        "--conditional",
        "--pathology",
        "Fracture",
        "--prompts",
        str(dataset.prompts),
        "--images",
        str(dataset.images),
    ]
    assert_refused(dataset, invoke(dataset, *args), 3, "empty group", "'Fracture'", "label == 1")


def test_image_without_embedding_is_refused(dataset):
    """chexbench-embed stops on an undecodable image; a synthetic table missing images must not pass silently."""
    rng = np.random.default_rng(0)
    partial = write_emb(
        dataset.root / "partial.parquet", dataset.image_ids[1:], rng.standard_normal((119, 8)), "synthetic", "raddino"
    )
    args = ["--real", str(dataset.real["raddino"]), "--synth", str(partial), "--images", str(dataset.images)]
    assert_refused(dataset, invoke(dataset, *args), 3, "1 image(s)", "have no embedding", "failed to decode")


def test_inception_score_on_pool_features_is_refused(dataset):
    args = [*dataset.args(), "--synth-logits", str(dataset.synth["inception"])]
    assert_refused(dataset, invoke(dataset, *args), 3, "needs classifier logits", "'inception' features")


@pytest.mark.parametrize(
    ("vectors", "fragments"),
    [
        (np.random.default_rng(0).standard_normal((120, 2048)), ("vectors are 2048 wide", "1008 or 1000 classes")),
        (np.abs(np.random.default_rng(0).standard_normal((120, 1008))), ("every 'inception-logits' value is non-neg",)),
    ],
    ids=["pool-width", "non-negative"],
)
def test_pool_features_named_inception_logits_are_refused(dataset, vectors, fragments):
    logits = write_emb(dataset.root / "fake.parquet", dataset.image_ids, vectors, "synthetic", "inception-logits")
    args = [*dataset.args(), "--synth-logits", str(logits)]
    assert_refused(dataset, invoke(dataset, *args), 3, str(logits), *fragments)


def test_the_embed_folder_gives_features_and_synthetic_logits(dataset):
    embed = dataset.root / "Results" / "m" / "r1" / "embed"
    embed.mkdir(parents=True)
    shutil.copy(dataset.real["inception"], embed / "real-inception.parquet")
    shutil.copy(dataset.synth["inception"], embed / "synthetic-inception.parquet")
    rng = np.random.default_rng(4)
    for source in ("real", "synthetic"):  # embed writes both; only the synthetic one is an IS input, neither features
        write_emb(
            embed / f"{source}-inception-logits.parquet",
            dataset.image_ids,
            rng.standard_normal((120, 1008)) * 2,
            source,
            "inception-logits",
        )
    result = CliRunner().invoke(
        main, ["run", "--results", str(dataset.root / "Results"), "--model", "m", "--run-id", "r1"]
    )
    assert result.exit_code == 0, result.output
    frame = metrics(dataset)
    assert set(frame.extractor.dropna()) == {"inception", "inception-logits"}
    expected = inception_score(read_embeddings(embed / "synthetic-inception-logits.parquet").vectors)
    assert value(frame, "IS").value == pytest.approx(expected.mean, rel=1e-9) and value(frame, "IS").n_synth == 120
    manifest = json.loads((stage_dir(dataset) / "manifest.json").read_text())
    assert manifest["inputs"]["synth_logits"]["path"] == str(embed / "synthetic-inception-logits.parquet")


def test_failed_rerun_removes_the_previous_outputs(dataset):
    assert invoke(dataset, *dataset.args()).exit_code == 0
    assert (stage_dir(dataset) / "metrics.parquet").exists()

    def explode(*args, **kwargs):
        raise MemoryError

    import chexbench_fidelity.kid as kid

    original = kid.kernel_inception_distance
    kid.kernel_inception_distance = explode
    try:
        result = invoke(dataset, *dataset.args(), "--force")
    finally:
        kid.kernel_inception_distance = original
    assert_refused(dataset, result, 6, "out of host memory")
    assert json.loads((stage_dir(dataset) / "manifest.json").read_text())["status"] == "failed"
