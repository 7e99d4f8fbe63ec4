"""chexbench-privacy end to end on a small world: the CheXGenBench-compatible CSV, the calibrated audit, the planted
copy and the positive controls found, the evidence, and every refused input (one line, exit 3, nothing written)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from chexbench_common.imageio import load_grey
from chexbench_privacy.audit import rate_ci
from chexbench_privacy.images import grey_at
from chexbench_privacy.ladder import NAMES
from chexbench_privacy.protocol import ORIGINAL_COLUMNS
from chexbench_privacy.reid import load_reid, preprocess
from chexbench_schema import read_table, write_table
from PIL import Image
from privacy_data import EXTRACTOR, invoke, make_world, write_space


def stage(world):
    return world.results / world.model / world.run_id / "privacy"


@pytest.fixture(scope="module")
def done(world):
    result = invoke(world.run_args())
    assert result.exit_code == 0, result.output
    out = stage(world)
    return {
        "per_prompt": pd.read_csv(out / "privacy_metrics.csv"),
        "per_image": pd.read_csv(out / "per_image.csv"),
        "metrics": read_table(out / "metrics.parquet", "metrics").set_index(["metric", "extractor"], drop=False),
        "manifest": json.loads((out / "manifest.json").read_text()),
    }


def value(done, metric, extractor=None, subset="all"):
    m = done["metrics"]
    rows = m[(m["metric"] == metric) & ((m["extractor"] == extractor) if extractor else m["extractor"].isna())]
    rows = rows[rows["subset"] == subset]
    assert len(rows) == 1, (metric, extractor, subset)
    return rows.iloc[0]


def test_per_prompt_csv_has_the_original_columns_first_and_one_row_per_prompt(done):
    table = done["per_prompt"]
    assert list(table.columns[: len(ORIGINAL_COLUMNS)]) == ORIGINAL_COLUMNS
    assert len(table) == 5 and (table["n_generations"] == 3).all()
    synth = done["per_image"][done["per_image"]["set"] == "synthetic"]
    means = synth.groupby("prompt_id")["reid_source"].mean()
    assert np.allclose(table.set_index("prompt_id")["Mean_reid_scores"], means.loc[table["prompt_id"]])
    assert np.allclose(
        table.set_index("prompt_id")["Min_latent_distance"],
        synth.groupby("prompt_id")[f"source_{EXTRACTOR}"].min().loc[table["prompt_id"]],
    )


def test_the_planted_copy_is_found_at_rank_one_and_flagged(done):
    synth = done["per_image"][done["per_image"]["set"] == "synthetic"]
    copy = synth.iloc[0]  # generation 0 of the first sampled prompt is its source image, byte for byte
    dcr, nndr = f"dcr_{EXTRACTOR}", f"nndr_{EXTRACTOR}"
    assert copy[f"nn_prompt_id_{EXTRACTOR}"] == copy["prompt_id"]
    assert copy[dcr] == pytest.approx(0, abs=1e-6) and copy[nndr] == pytest.approx(0, abs=1e-6)
    assert copy["pixel_source"] == 0 and copy[f"flag_dcr_{EXTRACTOR}"] and copy[f"flag_nndr_{EXTRACTOR}"]
    assert copy["flag_any"]
    # the new images are not copies: none is nearer the training pool than half the nearest holdout image
    holdout = done["per_image"][done["per_image"]["set"] == "holdout"]
    assert (synth[dcr] < 0.5 * holdout[dcr].min()).tolist() == [True] + [False] * (len(synth) - 1)


def test_the_control_ladder_is_caught_per_strength_and_finds_its_source(done):
    control = done["per_image"][done["per_image"]["set"] == "control"]
    assert len(control) == 6 * 4 and control.groupby("strength").size().to_dict() == dict.fromkeys(NAMES, 6)
    assert control["flag_any"].all() and control[f"rank1_{EXTRACTOR}"].all()
    for strength in NAMES:
        row = value(done, "control_sensitivity_any", subset=strength)
        assert row["value"] == 1.0 and row["ci_low"] == pytest.approx(rate_ci(6, 6)[0]) and row["n_synth"] == 6
        assert value(done, "control_source_rank1", EXTRACTOR, subset=strength)["value"] == 1.0
    # the copies drift away from their source as the strength grows (the ladder is ordered)
    medians = control.groupby("strength")[f"dcr_{EXTRACTOR}"].median().loc[list(NAMES)]
    assert medians.is_monotonic_increasing and medians["exact"] < 1e-6 < medians["mild"]
    limit = value(done, "control_detection_limit")
    assert limit["value"] == 4 and "up to 'strong'" in limit["note"]


def test_pixel_latent_and_reid_values_equal_independent_computations(world, done):
    synth = done["per_image"][done["per_image"]["set"] == "synthetic"].iloc[4]
    gen = read_table(world.chain / "generate" / "images.parquet", "images").set_index("image_id")
    train = read_table(world.train, "prompts").set_index("prompt_id")
    gen_file = world.chain / "generate" / "images" / gen.loc[synth["image_id"], "path"]
    src_file = world.real_root / train.loc[synth["prompt_id"], "image_path"]

    # pixel: float RMS of the two grey images at 512 px on the 0-255 scale (no uint8 wrap-around)
    def at512(path):
        image = Image.fromarray(load_grey(path).astype(np.float32), mode="F").resize((512, 512), Image.BILINEAR)
        return np.asarray(image, dtype=np.float64) * 255

    assert synth["pixel_source"] == pytest.approx(np.sqrt(np.mean((at512(gen_file) - at512(src_file)) ** 2)))
    assert np.allclose(grey_at(gen_file, 512), at512(gen_file))
    # re-ID: the network on the two images directly
    model, _ = load_reid(world.reid)
    with torch.no_grad():
        x = torch.stack(
            [preprocess(load_grey(gen_file), "chexgenbench"), preprocess(load_grey(src_file), "chexgenbench")]
        )
        e = model.embed(x)
        expected = float(model.head(e[:1], e[1:]))
    assert synth["reid_source"] == pytest.approx(expected, abs=1e-5)


def test_metrics_thresholds_evidence_and_manifest(world, done):
    out = stage(world)
    thresholds = json.loads((out / "thresholds.json").read_text())
    holdout = done["per_image"][done["per_image"]["set"] == "holdout"]
    dcr = thresholds[f"dcr/{EXTRACTOR}"]
    assert dcr["value"] == pytest.approx(np.quantile(holdout[f"dcr_{EXTRACTOR}"], 0.05), rel=1e-6)
    assert thresholds[f"nndr/{EXTRACTOR}"]["value"] == pytest.approx(1 / 3)
    assert "holdout" in thresholds["reid"]["source"] and thresholds["delta"]["value"] == 0.5
    row = value(done, "flag_rate_any")
    synth = done["per_image"][done["per_image"]["set"] == "synthetic"]
    assert row["value"] == pytest.approx(synth["flag_any"].mean()) and row["ci_low"] <= row["value"] <= row["ci_high"]
    assert value(done, "reid_mean", "reid")["value"] == pytest.approx(done["per_prompt"]["Mean_reid_scores"].mean())
    assert value(done, "patients_flagged")["value"] >= 1
    assert 0 <= value(done, "mia_auroc", EXTRACTOR)["value"] <= 1
    sheet = Image.open(out / "flagged_pairs.png")
    sheet.load()
    pairs = pd.read_csv(out / "flagged_pairs.csv")
    assert sheet.size[0] == 3 * 160 and len(pairs) == min(16, len(synth)) and pairs.iloc[0]["rules"] != "-"
    manifest = done["manifest"]
    assert manifest["status"] == "success" and len(manifest["weights"]["reid"]) == 64
    assert manifest["counts"]["synthetic"] == 15 and manifest["counts"]["training_patients"] == 20
    assert (out / "_SUCCESS").exists()
    # the test world's holdout is patient-disjoint and far from the controls; its random re-ID network cannot tell
    # one image from another, and says so
    assert len(manifest["warnings"]) == 1 and manifest["warnings"][0].startswith("reid not informative")
    assert manifest["spaces"]["reid"]["informative"] is False and manifest["spaces"][EXTRACTOR]["informative"]


def test_a_second_run_with_the_same_inputs_skips(world, done):
    result = invoke(world.run_args())
    assert result.exit_code == 0 and "up to date" in result.output


def test_worker_processes_give_the_same_answer(fresh):
    """Decoding in worker processes (re-ID inputs through a DataLoader, pixel distances in a process pool) must
    neither hang nor change a number."""
    assert invoke(fresh.run_args()).exit_code == 0
    serial = pd.read_csv(stage(fresh) / "per_image.csv")
    result = invoke(fresh.run_args("--workers", "2", "--force", "--cache-dir", str(fresh.root / "cache2")))
    assert result.exit_code == 0, result.output
    parallel = pd.read_csv(stage(fresh) / "per_image.csv")
    pd.testing.assert_frame_equal(serial, parallel)


def assert_refused(world, *args, expect: str):
    result = invoke(world.run_args(*args))
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0], result.output
    out = stage(world)
    assert not (out / "_SUCCESS").exists() and not (out / "metrics.parquet").exists()


@pytest.fixture
def fresh(tmp_path):
    return make_world(tmp_path, n_train=12, n_holdout=8, n_sample=2, gens=2, controls=2)


def test_embeddings_of_another_extractor_or_dimension_are_refused(fresh, tmp_path):
    other = write_space(
        tmp_path / "dino.parquet", ["x"], [next(fresh.real_root.iterdir())], "synthetic", extractor="dinov2"
    )
    assert_refused(fresh, "--control-embeddings", str(other), expect="extractor 'dinov2', expected 'raddino'")
    control = read_table(
        fresh.results / fresh.model / f"{fresh.run_id}.privacy-control/embed/synthetic-raddino.parquet", "embeddings"
    )
    wrong_weights = write_space(
        tmp_path / "w.parquet",
        control["image_id"],
        [next(fresh.real_root.iterdir())] * len(control),
        "synthetic",
        weights_sha256="c" * 64,
    )
    assert_refused(fresh, "--control-embeddings", str(wrong_weights), expect="weights_sha256")


def test_a_missing_source_image_is_refused(fresh):
    train = read_table(fresh.train, "prompts")
    (fresh.real_root / train["image_path"].iloc[3]).unlink()
    assert_refused(fresh, expect="is missing")


def test_a_checkpoint_with_an_extra_key_is_refused(fresh, tmp_path):
    state = torch.load(fresh.reid, weights_only=True)
    state["fc_extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    result = invoke(fresh.run_args("--reid-weights", str(tmp_path / "bad.pth")))
    assert result.exit_code == 3 and "fc_extra.weight" in result.output
    assert not (stage(fresh) / "_SUCCESS").exists()


def test_an_empty_or_overlapping_holdout_is_refused(fresh, tmp_path):
    holdout = read_table(fresh.holdout, "prompts")
    empty = write_table(holdout.iloc[:0], tmp_path / "empty.parquet", "prompts", producer="test")
    assert_refused(fresh, "--holdout-prompts", str(empty), expect="is empty")
    train = read_table(fresh.train, "prompts")
    shared = holdout.copy()
    shared.loc[0, "patient_id"] = train["patient_id"].iloc[0]
    overlap = write_table(shared, tmp_path / "overlap.parquet", "prompts", producer="test")
    assert_refused(fresh, "--holdout-prompts", str(overlap), expect="patient-disjoint")


def test_generations_of_unsampled_prompts_or_repeated_seeds_are_refused(fresh, tmp_path):
    images = read_table(fresh.chain / "generate" / "images.parquet", "images")
    repeated = images.copy()
    repeated.loc[1, "seed"] = repeated.loc[0, "seed"]
    path = write_table(repeated, tmp_path / "images.parquet", "images", producer="test")
    assert_refused(
        fresh, "--images", str(path), "--images-root", str(fresh.chain / "generate" / "images"), expect="repeated seeds"
    )


def test_sample_is_seeded_deduplicated_and_refuses_too_many(fresh, tmp_path):
    sample_dir = fresh.results / fresh.model / fresh.run_id / "privacy-sample"
    first = read_table(sample_dir / "prompts.parquet", "prompts")
    assert first["prompt_id"].is_unique and len(first) == 2
    shutil.rmtree(sample_dir)
    make = [
        "sample",
        "--results",
        str(fresh.results),
        "--model",
        fresh.model,
        "--run-id",
        fresh.run_id,
        "--prompts",
        str(fresh.train),
        "--real-root",
        str(fresh.real_root),
        "-n",
        "2",
        "--controls",
        "2",
        "--size",
        "48",
        "--progress",
        "none",
    ]
    assert invoke(make).exit_code == 0
    assert read_table(sample_dir / "prompts.parquet", "prompts")["prompt_id"].tolist() == first["prompt_id"].tolist()
    result = invoke([*make[:-6], "-n", "999", "--controls", "2", "--size", "48", "--force"])
    assert result.exit_code == 3 and "after de-duplication" in result.output


def _sample_args(world) -> list[str]:
    return [
        "sample", "--results", str(world.results), "--model", world.model, "--run-id", world.run_id,
        "--prompts", str(world.train), "--real-root", str(world.real_root), "-n", "2", "--controls", "2",
        "--size", "48", "--progress", "none", "--force",
    ]  # fmt: skip


def test_sample_names_every_undecodable_control_source(fresh):
    """A decompression bomb and a DICOM whose pixel data no decoder reads, as the two control sources: one line
    each naming the file, exit 3, no traceback, no control table."""
    from chexbench_common.testing import write_decompression_bomb_png, write_undecodable_dicom

    sample_dir = fresh.results / fresh.model / fresh.run_id / "privacy-sample"
    sources = pd.read_csv(sample_dir / "control" / "augmentations.csv")["source_image"].unique()
    assert len(sources) == 2
    write_decompression_bomb_png(fresh.real_root / sources[0])
    write_undecodable_dicom(fresh.real_root / sources[1])  # DICOM content under a .png name: read as DICOM
    result = invoke(_sample_args(fresh))
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 2 and "Traceback" not in result.output, result.output
    bomb, dicom = (next(line for line in lines if source in line) for source in sources)
    assert "refused as a possible decompression bomb" in bomb
    assert "cannot decode the DICOM pixel data, JPEG 2000" in dicom
    assert not (sample_dir / "_SUCCESS").exists() and not (sample_dir / "control" / "images.parquet").exists()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_run_names_every_undecodable_image_once(fresh, workers):
    """Two undecodable training images: privacy run's re-ID pass names both (from worker processes too)."""
    from chexbench_common.testing import write_decompression_bomb_png, write_undecodable_dicom

    train = read_table(fresh.train, "prompts")
    bad = [train["image_path"].iloc[2], train["image_path"].iloc[5]]
    write_decompression_bomb_png(fresh.real_root / bad[0])
    write_undecodable_dicom(fresh.real_root / bad[1])
    result = invoke(fresh.run_args("--workers", workers))
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 2 and "Traceback" not in result.output, result.output
    assert all(any(name in line for line in lines) for name in bad)
    assert not (stage(fresh) / "_SUCCESS").exists() and not (stage(fresh) / "metrics.parquet").exists()
