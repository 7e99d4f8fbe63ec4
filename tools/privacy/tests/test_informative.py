"""An instrument that cannot discriminate is reported as not informative and flags nothing: a constant re-ID
network, a constant feature space; a re-ID network whose scores do spread is used. And where each space's weights
come from: stand-ins found by their shape, declarations that contradict it refused."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from chexbench_schema import read_table, write_embeddings
from privacy_data import EXTRACTOR, WEIGHTS, invoke, make_world


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("informative"), n_train=16, n_holdout=12, n_sample=3, gens=2, controls=3)


def outputs(world):
    out = world.results / world.model / world.run_id / "privacy"
    metrics = read_table(out / "metrics.parquet", "metrics")
    return {
        "metrics": metrics,
        "per_image": pd.read_csv(out / "per_image.csv"),
        "manifest": json.loads((out / "manifest.json").read_text()),
    }


def row(metrics, metric, extractor, subset="all"):
    rows = metrics[(metrics["metric"] == metric) & (metrics["subset"] == subset)]
    rows = rows[rows["extractor"].isna()] if extractor is None else rows[rows["extractor"] == extractor]
    assert len(rows) == 1, (metric, extractor, subset)
    return rows.iloc[0]


def reid_checkpoint(world, tmp_path, name, weight_scale, bias):
    """The world's tiny re-ID network with its head's weights scaled (0: every pair gets sigmoid(bias))."""
    state = torch.load(world.reid, weights_only=True)
    state["fc_end.weight"] = state["fc_end.weight"] * weight_scale
    state["fc_end.bias"] = torch.full_like(state["fc_end.bias"], bias)
    torch.save(state, tmp_path / name)
    return tmp_path / name


def run(world, *args):
    result = invoke(world.run_args("--force", *args))
    assert result.exit_code == 0, result.output
    return outputs(world)


def test_a_constant_reid_network_is_not_informative_and_flags_nothing(small, tmp_path):
    # every score is sigmoid(1) = 0.731 > delta: the original's "count re-ID > delta" would count every prompt
    done = run(small, "--reid-weights", str(reid_checkpoint(small, tmp_path, "constant.pth", 0.0, 1.0)))
    m, per_image = done["metrics"], done["per_image"]
    assert np.allclose(per_image["reid_nn_score"], 1 / (1 + np.exp(-1.0)))
    assert row(m, "space_informative", "reid")["value"] == 0.0
    assert not per_image["flag_reid"].any()
    for metric in ("reid_count_gt_delta", "reid_images_gt_delta", "flag_rate_reid", "holdout_specificity_reid"):
        found = row(m, metric, "reid")
        assert pd.isna(found["value"]) and "reid not informative" in found["note"], metric
    assert pd.isna(row(m, "control_sensitivity_reid", "reid", "exact")["value"])
    assert any(w.startswith("reid not informative") for w in done["manifest"]["warnings"])
    assert done["manifest"]["spaces"]["reid"]["informative"] is False
    # the descriptive means are still reported, with the note
    assert row(m, "reid_mean", "reid")["value"] == pytest.approx(1 / (1 + np.exp(-1.0)))


def test_a_reid_network_whose_scores_spread_is_used(small, tmp_path):
    # |e1 - e2| >= 0, so a large negative head weight makes near pairs score high and far pairs low
    sharp = reid_checkpoint(small, tmp_path, "sharp.pth", 0.0, 0.0)
    state = torch.load(sharp, weights_only=True)
    state["fc_end.weight"] = torch.full_like(state["fc_end.weight"], -2000.0)
    state["fc_end.bias"] = torch.full_like(state["fc_end.bias"], 4.0)
    torch.save(state, sharp)
    done = run(small, "--reid-weights", str(sharp))
    m = done["metrics"]
    spread = done["manifest"]["spaces"]["reid"]["spread"]
    assert spread == pytest.approx(done["per_image"].query("set == 'holdout'")["reid_nn_score"].std(ddof=0))
    assert spread >= 1e-3 and row(m, "space_informative", "reid")["value"] == 1.0
    assert row(m, "flag_rate_reid", "reid")["value"] is not None
    assert not pd.isna(row(m, "reid_count_gt_delta", "reid")["value"])
    # the exact copies meet their own source: the re-ID space finds them
    assert row(m, "control_source_rank1", "reid", "exact")["value"] == 1.0


def constant_table(path, source, ids):
    frame = pd.DataFrame({"image_id": list(ids), "source": source, "extractor": EXTRACTOR})
    return write_embeddings(
        frame,
        np.full((len(frame), 64), 0.25),
        path,
        producer="test",
        extractor=EXTRACTOR,
        weights_sha256=WEIGHTS,
        preprocessing="thumbnail 8x8",
    )


def test_a_constant_feature_space_is_not_informative_and_flags_nothing(small, tmp_path):
    base = small.results / small.model
    images = read_table(small.chain / "generate" / "images.parquet", "images")
    control = read_table(base / small.run_id / "privacy-sample" / "control" / "images.parquet", "images")
    args = [
        "--synth-embeddings",
        str(constant_table(tmp_path / "s.parquet", "synthetic", images["image_id"])),
        "--train-embeddings",
        str(constant_table(tmp_path / "t.parquet", "real", read_table(small.train, "prompts")["prompt_id"])),
        "--holdout-embeddings",
        str(constant_table(tmp_path / "h.parquet", "real", read_table(small.holdout, "prompts")["prompt_id"])),
        "--control-embeddings",
        str(constant_table(tmp_path / "c.parquet", "synthetic", control["image_id"])),
    ]
    done = run(small, *args)
    m, per_image = done["metrics"], done["per_image"]
    # every distance is 0, so NNDR is 0 everywhere: without the check every image would be flagged
    assert (per_image[f"nndr_{EXTRACTOR}"] == 0).all()
    assert not per_image[[f"flag_dcr_{EXTRACTOR}", f"flag_nndr_{EXTRACTOR}", "flag_any"]].any().any()
    assert row(m, "space_informative", EXTRACTOR)["value"] == 0.0
    assert pd.isna(row(m, "flag_rate_any", None)["value"]) and pd.isna(row(m, "mia_auroc", EXTRACTOR)["value"])
    assert pd.isna(row(m, "control_detection_limit", None)["value"])
    assert "no space of the audit can discriminate" in done["manifest"]["warnings"][-1]


def test_weights_are_stand_ins_by_their_shape_and_contradicting_declarations_are_refused(small):
    done = run(small)
    spaces = done["manifest"]["spaces"]
    assert spaces[EXTRACTOR]["weights"] == "stand-in" and "64-d" in spaces[EXTRACTOR]["weights_evidence"]
    assert spaces["reid"]["weights"] == "stand-in" and "8 channels" in spaces["reid"]["weights_evidence"]
    assert row(done["metrics"], "space_real_weights", "reid")["value"] == 0.0
    for declaration, expect in (
        (f"{EXTRACTOR}=real", "the published raddino gives 768-d"),
        ("reid=real", "the published network is 64"),
        ("inception=real", "no such space"),
        ("reid=maybe", "give NAME=real or NAME=stand-in"),
    ):
        result = invoke(small.run_args("--force", "--weights", declaration))
        assert result.exit_code == 3 and expect in result.output, (declaration, result.output)
