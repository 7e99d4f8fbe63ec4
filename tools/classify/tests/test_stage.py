"""chexbench-classify end to end on the planted-signal world: every setting trains and is tabulated, the tiny
network beats chance, a kill mid-training resumes from the checkpoint, and refused inputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from chexbench_classify.cli import main
from chexbench_common.testing import run_as_srun_tasks
from chexbench_schema import CHEXPERT_LABELS, read_table, write_table
from click.testing import CliRunner

SETTINGS = ("all_original", "all_synthetic", "mixed", "augmented", "pretrain_synthetic", "duplicate_real")


def invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def out(world):
    return world.results / "m" / "r" / "classify"


@pytest.fixture(scope="module")
def done(world):
    result = invoke(world.args("--epochs", "1"))
    assert result.exit_code == 0, result.output
    return {
        "original": pd.read_csv(out(world) / "classification_metrics.csv"),
        "metrics": read_table(out(world) / "metrics.parquet", "metrics"),
        "predictions": pd.read_csv(out(world) / "predictions.csv"),
        "manifest": json.loads((out(world) / "manifest.json").read_text()),
        "output": result.output,
    }


def test_every_setting_is_trained_and_tabulated(world, done):
    original = done["original"]
    assert original["setting"].tolist() == list(SETTINGS)
    head = [
        "setting",
        "seed",
        "accuracy",
        "precision_micro",
        "recall_micro",
        "f1_micro",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "auc_macro",
    ]
    assert list(original.columns[: len(head)]) == head
    assert {f"auc_{label}" for label in CHEXPERT_LABELS} <= set(original.columns)
    metrics = done["metrics"]
    assert set(metrics["subset"]) == {*SETTINGS, *(f"{s}/seed0" for s in SETTINGS)}
    row = metrics[(metrics["metric"] == "auc_Edema") & (metrics["subset"] == "all_original/seed0")].iloc[0]
    assert pd.isna(row["value"]) and "undefined" in row["note"]  # Edema has no positive in the test set
    assert len(done["predictions"]) == 6 * 24
    from PIL import Image

    roc = Image.open(out(world) / "roc.png")
    roc.load()
    assert roc.size[0] == 3 * 320 and roc.size[1] > 2 * 320  # six panels, three columns, and the legend
    sets = done["manifest"]["training_sets"]
    assert sets["pretrain_synthetic"] == {"phase0": {"synthetic": 38}, "phase1": {"real": 38}}
    assert sets["duplicate_real"]["phase0"] == {"real": 38, "real-duplicate": 38}
    assert done["output"].count("epoch 1/1, train_loss") == 7  # a log line per epoch without a bar (7 phases)
    counts = done["manifest"]["counts"]
    assert counts["train_real"] + counts["validation"] == 48 and counts["prompts_without_twin"] == 0


def test_the_tiny_network_beats_chance_on_the_planted_signal(fresh):
    result = invoke(
        fresh.args("--setting", "all_original", "--seeds", "2", "--epochs", "4", "--batch-size", "8", "--lr", "1e-3")
    )
    assert result.exit_code == 0, result.output
    original = pd.read_csv(out(fresh) / "classification_metrics.csv")
    assert (original["auc_Cardiomegaly"] > 0.8).all(), original["auc_Cardiomegaly"].tolist()
    metrics = read_table(out(fresh) / "metrics.parquet", "metrics")
    mean = metrics[(metrics["metric"] == "auc_macro") & (metrics["subset"] == "all_original")].iloc[0]
    assert mean["value"] == pytest.approx(original["auc_macro"].mean()) and "2 seeds" in mean["note"]


def test_a_kill_mid_training_resumes_from_the_checkpoint(fresh):
    cli = Path(sys.executable).parent / "chexbench-classify"
    args = fresh.args("--setting", "all_original", "--epochs", "3")
    killed = subprocess.run(
        [str(cli), *args],
        env={**os.environ, "CHEXBENCH_FAULT": "classify:epoch@1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    last = out(fresh) / "checkpoints" / "all_original-seed0" / "phase0" / "last.ckpt"
    assert torch.load(last, weights_only=False, map_location="cpu")["epoch"] == 0  # epoch 1 of 3 is on disk
    again = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.loads((out(fresh) / "manifest.json").read_text())
    assert manifest["status"] == "success" and manifest["resumed"] == [str(last.parent)]
    assert torch.load(last, weights_only=False, map_location="cpu")["epoch"] >= 2  # trained on to the third epoch


def assert_refused(world, *args, expect):
    result = invoke(world.args(*args))
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0], result.output
    assert not (out(world) / "metrics.parquet").exists()


def test_a_shared_patient_missing_images_and_wrong_backbone_keys_are_refused(fresh):
    # (labels outside 1/0/-1/blank never get this far: the prompts table contract refuses them on read)
    train = read_table(fresh.train, "prompts")
    test = read_table(fresh.test, "prompts")
    test.loc[0, "patient_id"] = train["patient_id"].iloc[0]
    write_table(test, fresh.root / "leak.parquet", "prompts", producer="test")
    assert_refused(fresh, "--test-prompts", str(fresh.root / "leak.parquet"), expect="patient-disjoint")
    torch.save({"conv1.weight": torch.zeros(1)}, fresh.root / "wrong.pth")
    assert_refused(
        fresh, "--backbone-weights", str(fresh.root / "wrong.pth"), expect="not a torchvision ResNet50 state_dict"
    )
    (fresh.root / "gen" / read_table(fresh.images, "images")["path"].iloc[3]).unlink()
    assert_refused(fresh, expect="is missing")


def test_densenet_backbone_trains_end_to_end(fresh):
    result = invoke(fresh.args("--setting", "all_original", "--backbone", "densenet121", "--width", "8"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out(fresh) / "manifest.json").read_text())
    assert manifest["params"]["options"]["backbone"] == "densenet121"


def test_xrv_densenet_trains_end_to_end_from_its_exported_weights(fresh):
    from chexbench_classify.backbones import XrvDenseNet121

    state = XrvDenseNet121(num_outputs=18, width=8).state_dict()
    state["op_threshs"] = torch.rand(18)
    torch.save(state, fresh.root / "xrv.pth")
    args = ("--setting", "all_original", "--backbone", "xrv-densenet121", "--width", "8")
    result = invoke(fresh.args(*args, "--backbone-weights", str(fresh.root / "xrv.pth")))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out(fresh) / "manifest.json").read_text())
    assert manifest["params"]["options"]["backbone"] == "xrv-densenet121"
    assert len(pd.read_csv(out(fresh) / "predictions.csv")) == 24


def test_ddp_on_two_cpu_processes_trains_once_and_predicts_every_test_image(fresh):
    """Lightning's DDP launcher re-runs the command in a second process: that rank trains alongside rank 0 and writes
    nothing; rank 0 owns the outputs and predicts on one device, so no test image is lost to a distributed sampler."""
    cli = Path(sys.executable).parent / "chexbench-classify"
    args = fresh.args("--setting", "all_original", "--device", "cpu", "--devices", "2", "--strategy", "ddp")
    result = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr
    predictions = pd.read_csv(out(fresh) / "predictions.csv")
    assert len(predictions) == 24 and predictions["prompt_id"].is_unique
    assert json.loads((out(fresh) / "manifest.json").read_text())["status"] == "success"


def test_ddp_under_srun_each_task_a_rank_rank0_predicts(fresh):
    """What `srun --ntasks-per-node=2` starts: two processes of the same command whose SLURM_* variables make them
    ranks 0 and 1 (Lightning's SLURMEnvironment, no launcher of its own); rank 0's one-device prediction must not
    trip over the two-task Slurm world."""
    cli = Path(sys.executable).parent / "chexbench-classify"
    args = fresh.args("--setting", "all_original", "--device", "cpu", "--devices", "2", "--strategy", "ddp")
    ranks = run_as_srun_tasks([str(cli), *args])
    assert [rank.returncode for rank in ranks] == [0, 0], ranks[0].stderr[-2000:] + ranks[1].stderr[-2000:]
    assert "MEMBER: 2/2" in ranks[1].stderr
    predictions = pd.read_csv(out(fresh) / "predictions.csv")
    assert len(predictions) == 24 and predictions["prompt_id"].is_unique
    assert json.loads((out(fresh) / "manifest.json").read_text())["status"] == "success"
