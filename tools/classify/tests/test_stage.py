"""chexbench-classify end to end on the planted-signal worlds: every setting trains and is tabulated with its
checkpoint selection and CIs, synthetic-only training never selects on real labels (the reversed-signal world), a
SIGKILL mid-training resumes at the next epoch, DDP validation AUROC equals the single-process value, the same seed
gives the same tables, and refused inputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from chexbench_classify.cli import main
from chexbench_common.testing import run_as_srun_tasks
from chexbench_schema import CHEXPERT_LABELS, read_table, write_table
from classify_world import SIZE, make_world
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

CLI = Path(sys.executable).parent / "chexbench-classify"

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
    assert counts["validation_synthetic"] == counts["validation"] and counts["test_patients"] == 12


def rows(metrics, metric, subset):
    return metrics[(metrics["metric"] == metric) & (metrics["subset"] == subset)]


def test_each_setting_records_its_selection_rule_and_chosen_epoch(done):
    """Synthetic-only phases select on held-out synthetic images, phases with real images on the real validation
    split: in the metrics table (a row per setting and seed) and in the manifest."""
    metrics, selection = done["metrics"], done["manifest"]["selection"]
    expected = {
        "all_original": ["real-validation"],
        "all_synthetic": ["held-out-synthetic"],
        "mixed": ["real-validation"],
        "augmented": ["real-validation"],
        "pretrain_synthetic": ["held-out-synthetic", "real-validation"],
        "duplicate_real": ["real-validation"],
    }
    for setting, rules in expected.items():
        records = selection[f"{setting}/seed0"]
        assert [r["rule"] for r in records] == rules
        assert all(r["epoch"] == 1 and r["epochs_trained"] == 1 for r in records)
        (row,) = rows(metrics, "selected_epoch", f"{setting}/seed0").itertuples()
        assert row.value == 1 and all(rule in row.note for rule in rules), row.note
    pretrain = rows(metrics, "selected_epoch", "pretrain_synthetic/seed0").iloc[0]["note"]
    assert pretrain.startswith("phase 0 on synthetic images: held-out-synthetic"), pretrain
    assert set(done["manifest"]["selection_rules"]) == {"real-validation", "held-out-synthetic"}


def test_every_metric_has_a_ci_and_macros_share_one_label_set(done):
    metrics, original = done["metrics"], done["original"]
    per_class = [f"{name}_Cardiomegaly" for name in ("auc", "auprc", "f1_05", "f1_tuned", "prevalence")]
    overall = ["auc_macro", "auprc_macro", "f1_macro_05", "f1_macro_tuned", "auc_micro", "f1_micro_05", "accuracy"]
    for subset in ("all_synthetic/seed0", "all_synthetic"):  # a seed, and the mean over seeds
        for metric in overall + per_class:
            (row,) = rows(metrics, metric, subset).itertuples()
            assert row.ci_low <= row.value <= row.ci_high and "CI: 50 " in row.note, (metric, subset, row)
    # Cardiomegaly is the test set's only label with both classes: every macro is its value, and says so
    seed = metrics[metrics["subset"] == "all_synthetic/seed0"].set_index("metric")
    for macro, name in (("auc_macro", "auc"), ("auprc_macro", "auprc"), ("f1_macro_05", "f1_05")):
        assert seed.loc[macro, "value"] == seed.loc[f"{name}_Cardiomegaly", "value"]
        assert "macro over Cardiomegaly" in seed.loc[macro, "note"]
    assert pd.isna(seed.loc["f1_05_Edema", "value"])  # no positive in the test set: outside the label set
    assert (original["macro_labels"] == "Cardiomegaly").all()
    assert (original["f1_macro"] == original["f1_Cardiomegaly"]).all()


def test_synthetic_only_training_never_selects_on_real_labels(tmp_path):
    """The reversed-signal world: a bright square marks Cardiomegaly in the real images and its absence in their
    synthetic twins. Trained on real images the tiny network learns the square (the control); trained on the twins
    and selected on held-out twins it learns the reversal, so on real test images it must rank below chance, seed
    after seed."""
    world = make_world(tmp_path, n_train=96, reversed_twins=True)
    args = ("--setting", "all_original", "--setting", "all_synthetic", "--seeds", "3", "--epochs", "4")
    result = invoke(world.args(*args, "--batch-size", "8", "--lr", "1e-3"))
    assert result.exit_code == 0, result.output
    original = pd.read_csv(out(world) / "classification_metrics.csv").set_index(["setting", "seed"])
    auc = original["auc_Cardiomegaly"]
    assert (auc["all_original"] > 0.75).all() and (auc["all_synthetic"] < 0.25).all(), auc.to_dict()
    metrics = read_table(out(world) / "metrics.parquet", "metrics")
    mean = rows(metrics, "auc_Cardiomegaly", "all_synthetic").iloc[0]
    assert mean["value"] == pytest.approx(auc["all_synthetic"].mean()) and "3 seeds" in mean["note"]
    assert mean["ci_high"] < 0.5
    manifest = json.loads((out(world) / "manifest.json").read_text())
    rules = {r[0]["rule"] for key, r in manifest["selection"].items() if key.startswith("all_synthetic")}
    assert rules == {"held-out-synthetic"}


@pytest.mark.system
def test_a_sigkill_resumes_at_the_epoch_after_the_last_one_finished(fresh):
    """Killed (SIGKILL) at the start of phase 1's fourth epoch: the rerun trains phase 1 on from its fourth epoch
    and leaves the finished phase 0 alone. No validation label has both classes, so validation macro-AUROC stays
    flat and the best checkpoint stays at epoch 1: only a checkpoint saved after every epoch knows that three were
    done."""
    train = read_table(fresh.train, "prompts").assign(Cardiomegaly=0.0)
    write_table(train, fresh.root / "flat.parquet", "prompts", producer="test")
    args = fresh.args("--setting", "pretrain_synthetic", "--epochs", "5", "--patience", "10")
    args[args.index("--train-prompts") + 1] = str(fresh.root / "flat.parquet")
    # the fault point is passed at the start of every epoch but the first: 4 times in phase 0, then phase 1's
    fault = {**os.environ, "CHEXBENCH_FAULT": "classify:epoch@7"}
    killed = subprocess.run([str(CLI), *args], env=fault, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    phase = out(fresh) / "checkpoints" / "pretrain_synthetic-seed0"
    epoch = {n: torch.load(phase / "phase1" / n, weights_only=True)["epoch"] for n in ("last.ckpt", "best.ckpt")}
    assert epoch == {"last.ckpt": 2, "best.ckpt": 0}  # three epochs done, the best is the first
    again = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    epochs = [line.split(": epoch ")[1].split(",")[0] for line in again.stderr.splitlines() if ": epoch " in line]
    assert epochs == ["4/5", "5/5"], epochs  # phase 1 only, from its fourth epoch on
    assert f"resuming {phase / 'phase1'} from {phase / 'phase1' / 'last.ckpt'} (epoch 3 done)" in again.stderr
    manifest = json.loads((out(fresh) / "manifest.json").read_text())
    assert manifest["status"] == "success" and manifest["resumed"] == [str(phase / "phase1")]
    records = manifest["selection"]["pretrain_synthetic/seed0"]
    assert [(r["epoch"], r["epochs_trained"]) for r in records] == [(1, 5), (1, 5)]


@pytest.mark.system
def test_the_same_seed_gives_the_same_tables_run_after_run(fresh):
    """The same command twice on CPU, each a fresh process (the second reads the image cache the first built):
    equal metrics tables and predictions. It covers a synthetic-only phase on the fixed schedule (its last epoch)
    and flips drawn in a DataLoader worker."""
    args = fresh.args("--setting", "all_original", "--setting", "pretrain_synthetic", "--hflip", "--workers", "1")
    args += ["--synthetic-selection", "last-epoch"]
    tables, predictions = [], []
    for name in ("first", "second"):
        args[args.index("--results") + 1] = str(fresh.root / name)
        result = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        folder = fresh.root / name / "m" / "r" / "classify"
        tables.append(read_table(folder / "metrics.parquet", "metrics"))
        predictions.append((folder / "predictions.csv").read_text())
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    assert predictions[0] == predictions[1]
    manifest = json.loads((folder / "manifest.json").read_text())
    pretrain = manifest["selection"]["pretrain_synthetic/seed0"]
    assert pretrain[0]["rule"] == "last-epoch" and pretrain[0]["epoch"] == pretrain[0]["epochs_trained"] == 2
    assert pretrain[0]["checkpoint"] == "last.ckpt" and pretrain[1]["rule"] == "real-validation"


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


def test_all_synthetic_without_held_out_twins_is_refused_before_training(fresh):
    """Selecting on held-out synthetic images needs the validation prompts' twins: without them, one line that names
    the way out, and nothing trained."""
    from chexbench_classify.settings import validation_split

    _, val = validation_split(read_table(fresh.train, "prompts"), 0.2, seed=0)
    images = read_table(fresh.images, "images")
    kept = images[~images["prompt_id"].isin(val["prompt_id"])]
    write_table(kept, fresh.root / "no-val-twins.parquet", "images", producer="test", extra={"images_root": "gen"})
    args = ("--images", str(fresh.root / "no-val-twins.parquet"), "--setting", "all_synthetic")
    assert_refused(fresh, *args, expect="--synthetic-selection last-epoch")
    assert not (out(fresh) / "checkpoints").exists()


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


def _validation_auroc(world, checkpoint: Path, val_fraction: float) -> tuple[float, float]:
    """The checkpoint's validation macro-AUROC computed here in one process, and the mean of the two AUROCs of a
    two-rank distributed sampler's shards (what averaging per-rank values reports; a shard without a label of both
    classes counts 0.5, the fallback a per-rank computation needs)."""
    from chexbench_classify.data import ImageCache, LabelledImages
    from chexbench_classify.labels import targets
    from chexbench_classify.model import Classifier
    from chexbench_classify.settings import validation_split

    train = read_table(world.train, "prompts")
    _, val = validation_split(train.assign(file=[world.real_root / p for p in train["image_path"]]), val_fraction, 0)
    y, mask = targets(val, "zeros")
    data = LabelledImages(val, y, mask, ImageCache(None, SIZE))
    model = Classifier.load_from_checkpoint(checkpoint, weights_only=True).eval()
    with torch.no_grad():
        probs = torch.sigmoid(model(torch.stack([data[i][0] for i in range(len(data))]))).numpy()

    def macro(rows):
        both = [c for c in range(14) if 0 < y[rows, c].sum() < len(rows)]
        return np.mean([roc_auc_score(y[rows, c], probs[rows, c]) for c in both]) if both else 0.5

    padded = list(range(len(y))) + list(range(len(y) % 2))  # DistributedSampler(shuffle=False) over 2 ranks
    return macro(np.arange(len(y))), np.mean([macro(np.array(padded[rank::2])) for rank in (0, 1)])


@pytest.mark.system
def test_ddp_on_two_cpu_processes_trains_once_and_predicts_every_test_image(tmp_path):
    """Lightning's DDP launcher re-runs the command in a second process: that rank trains alongside rank 0 and writes
    nothing; rank 0 owns the outputs and predicts on one device, so no test image is lost to a distributed sampler.
    The validation macro-AUROC the two ranks select on is the whole validation set's (predictions gathered, the
    sampler's repeated row dropped), equal to the value one process computes for the same weights; the mean of the
    per-rank values is not."""
    world = make_world(tmp_path, n_train=49)  # with --val-fraction 0.25, 13 validation rows: one is repeated
    args = world.args("--setting", "all_original", "--device", "cpu", "--devices", "2", "--strategy", "ddp")
    args += ["--epochs", "1", "--lr", "1e-5", "--val-fraction", "0.25"]
    result = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr
    predictions = pd.read_csv(out(world) / "predictions.csv")
    assert len(predictions) == 24 and predictions["prompt_id"].is_unique
    manifest = json.loads((out(world) / "manifest.json").read_text())
    assert manifest["status"] == "success" and manifest["counts"]["validation"] % 2 == 1
    best = out(world) / "checkpoints" / "all_original-seed0" / "phase0" / "best.ckpt"
    state = torch.load(best, weights_only=True)["callbacks"]
    (logged,) = [v["best_model_score"] for k, v in state.items() if k.startswith("ModelCheckpoint{'monitor': 'val")]
    single, per_rank_mean = _validation_auroc(world, best, 0.25)
    assert float(logged) == pytest.approx(single, abs=1e-6)
    assert abs(per_rank_mean - single) > 0.01, (per_rank_mean, single)  # the case tells the two apart


@pytest.mark.system
def test_ddp_under_srun_each_task_a_rank_rank0_predicts(fresh):
    """What `srun --ntasks-per-node=2` starts: two processes of the same command whose SLURM_* variables make them
    ranks 0 and 1 (Lightning's SLURMEnvironment, no launcher of its own); rank 0's one-device prediction must not
    trip over the two-task Slurm world."""
    args = fresh.args("--setting", "all_original", "--device", "cpu", "--devices", "2", "--strategy", "ddp")
    ranks = run_as_srun_tasks([str(CLI), *args, "--epochs", "1"])
    assert [rank.returncode for rank in ranks] == [0, 0], ranks[0].stderr[-2000:] + ranks[1].stderr[-2000:]
    assert "MEMBER: 2/2" in ranks[1].stderr
    predictions = pd.read_csv(out(fresh) / "predictions.csv")
    assert len(predictions) == 24 and predictions["prompt_id"].is_unique
    assert json.loads((out(fresh) / "manifest.json").read_text())["status"] == "success"
