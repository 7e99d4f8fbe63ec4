"""chexbench-align end to end: per-image cosines equal a direct computation, batching changes nothing, floor and
ceiling and per-pathology rows exist, the original CSV columns, truncation counted, and every refused input."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from chexbench_align.biovil import load_image_tower, load_text_tower
from chexbench_align.cli import main
from chexbench_align.preprocess import biovil_input, load_uint8
from chexbench_schema import read_table, write_table
from click.testing import CliRunner


def invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def out(world):
    return world.results / "m" / "r" / "align"


@pytest.fixture(scope="module")
def done(world):
    result = invoke(world.args())
    assert result.exit_code == 0, result.output
    return {
        "scores": pd.read_csv(out(world) / "scores.csv"),
        "metrics": read_table(out(world) / "metrics.parquet", "metrics"),
        "manifest": json.loads((out(world) / "manifest.json").read_text()),
    }


def metric(done, name, subset="all"):
    m = done["metrics"]
    row = m[(m["metric"] == name) & (m["subset"] == subset)]
    assert len(row) == 1
    return row.iloc[0]


def test_scores_equal_a_direct_computation(world, done):
    scores = done["scores"]
    synth = scores[scores["set"] == "synthetic"].iloc[2]
    image_model, _ = load_image_tower(world.biovil / "biovil_t_image_model_proj_size_128.pt")
    text_model, tokenizer, _ = load_text_tower(world.biovil / "text")
    images = read_table(world.images, "images").set_index("image_id")
    x = biovil_input(load_uint8(world.root / "gen" / images.loc[synth["image_id"], "path"]))[None]
    enc = tokenizer([synth["prompt"].rstrip("!?.")], return_tensors="pt")
    with torch.no_grad():
        expected = float((image_model(x) * text_model(enc["input_ids"], enc["attention_mask"])).sum())
    assert synth["score"] == pytest.approx(expected, abs=1e-6)


def test_sets_groups_and_the_original_csv(world, done):
    scores = done["scores"]
    assert scores["set"].value_counts().to_dict() == {"synthetic": 6, "floor": 6, "ceiling": 5}
    floor, synth = scores[scores["set"] == "floor"], scores[scores["set"] == "synthetic"]
    assert (floor["prompt_id"].to_numpy() != synth["prompt_id"].to_numpy()).all()  # nobody keeps its own prompt
    row = metric(done, "alignment")
    assert row["value"] == pytest.approx(synth["score"].mean()) and row["ci_low"] <= row["value"] <= row["ci_high"]
    assert metric(done, "alignment_ceiling")["n_real"] == 5 and metric(done, "alignment_floor")["n_synth"] == 6
    effusion = metric(done, "alignment", "Pleural Effusion")
    assert effusion["n_synth"] == 1
    original = pd.read_csv(out(world) / "alignment.csv")
    assert list(original.columns) == ["Alignment_score", "Extra Info"]
    assert original["Alignment_score"].iloc[0] == pytest.approx(row["value"])  # not rounded
    conditional = pd.read_csv(out(world) / "conditional_alignment.csv")
    assert list(conditional.columns) == ["Alignment_score", "Extra Info", "Pathology"]
    manifest = done["manifest"]
    assert manifest["status"] == "success" and set(manifest["weights"]) == {"image", "text"}
    assert manifest["truncated_prompts"] == 0 and manifest["token_limit"] == 64
    assert manifest["monochrome1_dicoms"] == 1  # the world's DICOM, scored as hi-ml loads it (and warned about)


def test_the_same_run_twice_gives_equal_tables(world, done):
    """Determinism on CPU for a given seed: a second run (another run id) writes the same scores and metrics."""
    result = invoke(world.args("--run-id", "again"))
    assert result.exit_code == 0, result.output
    again = world.results / "m" / "again" / "align"
    pd.testing.assert_frame_equal(pd.read_csv(again / "scores.csv"), done["scores"], check_exact=True)
    metrics = read_table(again / "metrics.parquet", "metrics")
    assert (metrics["run_id"] == "again").all()
    columns = [c for c in metrics.columns if c not in ("run_id", "note")]
    pd.testing.assert_frame_equal(metrics[columns], done["metrics"][columns], check_exact=True)
    assert metrics["note"].tolist() == done["metrics"]["note"].tolist()
    assert metrics["ci_low"].notna().any()  # the intervals were compared, not only empty ones


def test_the_seed_moves_the_floor_and_the_intervals(world, done):
    result = invoke(world.args("--seed", "7", "--run-id", "seed7"))
    assert result.exit_code == 0, result.output
    other = read_table(world.results / "m" / "seed7" / "align" / "metrics.parquet", "metrics")
    one, two = (m.set_index(["metric", "subset"]).loc[("alignment", "all")] for m in (done["metrics"], other))
    assert one["value"] == two["value"] and one["ci_low"] != two["ci_low"]  # the mean has no randomness
    floor = pd.read_csv(world.results / "m" / "seed7" / "align" / "scores.csv").query("set == 'floor'")
    assert floor["prompt_id"].tolist() != done["scores"].query("set == 'floor'")["prompt_id"].tolist()
    assert "seed 42" in one["note"] and "seed 7" in two["note"] and "percentile bootstrap" in two["note"]


@pytest.mark.parametrize(("device", "code"), [("cdua", 2), ("cuda", 5)])
def test_a_bad_device_leaves_the_finished_run_untouched(world, done, monkeypatch, device, code):
    """--device is checked while the command line is parsed: a forced re-run of the finished run with a misspelt
    device (a usage error) or a GPU this machine does not show (a missing resource) never reaches its folder."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    files = sorted(p for p in out(world).iterdir() if p.is_file())
    before = [p.read_bytes() for p in files]
    result = invoke(world.args("--force", "--device", device))
    assert result.exit_code == code, result.output
    assert sorted(p for p in out(world).iterdir() if p.is_file()) == files
    assert [p.read_bytes() for p in files] == before and (out(world) / "_SUCCESS") in files


def test_batch_size_and_workers_change_nothing(fresh):
    assert invoke(fresh.args("--batch-size", "1")).exit_code == 0
    one = pd.read_csv(out(fresh) / "scores.csv")
    result = invoke(fresh.args("--batch-size", "4", "--workers", "2", "--force"))
    assert result.exit_code == 0, result.output
    four = pd.read_csv(out(fresh) / "scores.csv")
    assert np.allclose(one["score"], four["score"], rtol=0, atol=1e-6)


def test_a_prompt_over_the_token_limit_is_truncated_and_counted(fresh):
    prompts = read_table(fresh.prompts, "prompts")
    prompts.loc[1, "prompt"] = " ".join(["effusion"] * 100)
    write_table(prompts, fresh.prompts, "prompts", producer="test")
    result = invoke(fresh.args())
    assert result.exit_code == 0, result.output
    manifest = json.loads((out(fresh) / "manifest.json").read_text())
    assert manifest["truncated_prompts"] == 1
    scores = pd.read_csv(out(fresh) / "scores.csv")
    assert scores[scores["prompt_id"] == prompts.loc[1, "prompt_id"]]["truncated"].all()


def assert_refused(world, *args, expect):
    result = invoke(world.args(*args))
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0], result.output
    assert not (out(world) / "_SUCCESS").exists() and not (out(world) / "metrics.parquet").exists()


def test_checkpoints_with_missing_extra_or_misshapen_keys_are_refused(fresh):
    path = fresh.biovil / "biovil_t_image_model_proj_size_128.pt"
    state = torch.load(path, weights_only=True)
    broken = dict(state)
    del broken["projector.model.3.bias"]
    torch.save(broken, fresh.root / "missing.pt")
    assert_refused(
        fresh, "--image-weights", str(fresh.root / "missing.pt"), expect="missing 1 keys ['projector.model.3.bias']"
    )
    torch.save(state | {"extra.weight": torch.zeros(1)}, fresh.root / "extra.pt")
    assert_refused(fresh, "--image-weights", str(fresh.root / "extra.pt"), expect="unexpected 1 keys ['extra.weight']")
    torch.save(state | {"encoder.backbone_to_vit.weight": torch.zeros(3, 3, 1, 1)}, fresh.root / "shape.pt")
    assert_refused(fresh, "--image-weights", str(fresh.root / "shape.pt"), expect="wrong shape")
    text = torch.load(fresh.biovil / "text" / "pytorch_model.bin", weights_only=True)
    del text["cls_projection_head.dense_to_output.bias"]
    torch.save(text, fresh.biovil / "text" / "pytorch_model.bin")
    assert_refused(fresh, expect="cls_projection_head.dense_to_output.bias")


def test_an_image_that_fails_to_decode_is_refused(fresh):
    (fresh.root / "gen" / "gen_2_0.png").write_bytes(b"not a png")
    assert_refused(fresh, expect="gen_2_0.png")


def test_images_whose_prompts_are_unknown_are_refused(fresh):
    prompts = read_table(fresh.prompts, "prompts")
    write_table(prompts.iloc[1:], fresh.root / "fewer.parquet", "prompts", producer="test")
    assert_refused(fresh, "--prompts", str(fresh.root / "fewer.parquet"), expect="is not in")


def test_a_prompt_with_a_special_token_is_refused(fresh):
    prompts = read_table(fresh.prompts, "prompts")
    prompts.loc[2, "prompt"] = "[SEP] effusion"
    write_table(prompts, fresh.prompts, "prompts", producer="test")
    assert_refused(fresh, expect="special token [SEP]")


def test_the_tiny_model_builds_byte_identical_files(tmp_path):
    """The same seed gives the same files (their sha256 go to the manifest): no temporary names inside the archives,
    BatchNorm calibrated in float64."""
    from chexbench_align.tiny import build_tiny_biovil

    one, two = (build_tiny_biovil(tmp_path / name, width=8) for name in ("one", "two"))
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert "biovil_t_image_model_proj_size_128.pt" in map(str, files) and len(files) == 6
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
