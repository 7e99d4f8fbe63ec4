"""`chexbench-classify run`: train every setting with every seed on the TRAIN prompts' real images and their
synthetic twins, test on the real TEST images, and tabulate (metrics table, the original's CSV, predictions)."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.atomic import write_json_atomic, write_text_atomic
from chexbench_common.errors import BadInputError, MissingResourceError
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.paths import resolve_under
from chexbench_common.rundir import StageRun, describe_inputs, generated_images
from chexbench_schema import CHEXPERT_LABELS, read_metadata, read_table, write_table
from chexbench_schema.metrics import MetricRow, metrics_frame
from sklearn.metrics import precision_score, recall_score

from . import __version__
from .data import ImageCache
from .labels import POLICIES, targets
from .metrics import (
    Interval,
    draw_patients,
    draw_seeds,
    evaluate,
    mean_over_seeds,
    patient_groups,
    resample_weights,
    tune_thresholds,
)
from .roc import roc_png
from .settings import RULES, SETTINGS, phases, selection_rule, validation_split
from .train import Options, train_and_predict, validation_set

log = logging.getLogger(__name__)
STAGE = "classify"
PRODUCER = f"chexbench-{STAGE} {__version__}"
METRICS, ORIGINAL, PREDICTIONS, ROC = "metrics.parquet", "classification_metrics.csv", "predictions.csv", "roc.png"
OUTPUTS = (METRICS, ORIGINAL, PREDICTIONS, ROC)
BOOTSTRAP_SEED = 0  # the patient draws: the same for every setting and seed, so their intervals are paired
FOLLOWER_WAIT_S = 600  # how long a DDP follower waits for rank 0 to prepare the checkpoints folder


@dataclass
class Request:
    results: Path
    model: str
    run_id: str
    train_prompts: Path
    test_prompts: Path
    real_root: Path
    images: Path | None = None
    images_root: Path | None = None
    settings: tuple[str, ...] = SETTINGS
    seeds: tuple[int, ...] = (0, 1, 2)
    val_fraction: float = 0.05
    bootstrap: int = 1000
    ci_level: float = 0.95
    synthetic_selection: str = "held-out-synthetic"
    options: Options = field(default_factory=Options)
    cache_dir: Path | None = None
    force: bool = False


def _real(path: Path, root: Path, what: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise BadInputError(f"{path}: {what} prompts table not found")
    table = read_table(path, "prompts")
    table = table[table["image_path"].notna()].drop_duplicates("image_path").reset_index(drop=True)
    if table.empty:
        raise BadInputError(f"{path}: no {what} row has an image_path")
    table["file"] = [
        resolve_under(root, p, where=f"{path} prompt {i}")
        for i, p in zip(table["prompt_id"], table["image_path"], strict=True)
    ]
    missing = [i for i, f in enumerate(table["file"]) if not f.is_file()]
    if missing:
        raise BadInputError(
            f"{path} row {missing[0] + 1}: image {table['file'].iloc[missing[0]]} is missing; check --real-root"
        )
    return table


def _synthetic(path: Path, root: Path | None, train: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One synthetic twin per TRAIN prompt (the first generation), with the prompt's labels; and how many TRAIN
    prompts have none (documented handling: they train on real images only in `mixed`, and are absent from
    `all_synthetic` and from the synthetic half of `augmented`)."""
    table = read_table(path, "images")
    if root is None:
        recorded = read_metadata(path).get("extra", {}).get("images_root")
        root = Path(path).parent / recorded if recorded else Path(path).parent
    table = table.sort_values(["prompt_id", "sample_index"]).drop_duplicates("prompt_id")
    table = table[table["prompt_id"].isin(train["prompt_id"])]
    table["file"] = [
        resolve_under(root, p, where=f"{path} image {i}") for i, p in zip(table["image_id"], table["path"], strict=True)
    ]
    missing = [f for f in table["file"] if not f.is_file()]
    if missing:
        raise BadInputError(f"{path}: image file {missing[0]} is missing ({len(missing)} in all); check --images-root")
    labels = train.set_index("prompt_id")[[*CHEXPERT_LABELS, "patient_id"]]
    frame = table[["image_id", "prompt_id", "file"]].join(labels, on="prompt_id")
    return frame.reset_index(drop=True), int((~train["prompt_id"].isin(frame["prompt_id"])).sum())


def prepare(request: Request):
    train = _real(request.train_prompts, request.real_root, "TRAIN")
    test = _real(request.test_prompts, request.real_root, "TEST")
    shared = set(train["patient_id"].dropna()) & set(test["patient_id"].dropna())
    if shared:
        raise BadInputError(
            f"{request.test_prompts}: {len(shared)} patients are also in {request.train_prompts} "
            f"(first: {sorted(shared)[0]}); the test set must be patient-disjoint from TRAIN"
        )
    images = request.images or generated_images(request.results, request.model, request.run_id)
    if not Path(images).is_file():
        raise BadInputError(
            f"{images}: images table not found; generate the TRAIN prompts' images first or pass --images"
        )
    synth, without_twin = _synthetic(images, request.images_root, train)
    weights = {}
    if request.options.backbone_weights is not None:  # checked before anything starts
        from .backbones import build
        from .model import load_pretrained

        net, head = build(request.options.backbone, 14, request.options.width)
        weights["backbone"] = load_pretrained(net, request.options.backbone_weights, request.options.backbone)
    return train, test, synth, without_twin, Path(images), weights


def _stage(request: Request) -> StageRun:
    return StageRun(request.results, request.model, request.run_id, STAGE, tool_version=__version__)


def _options(request: Request) -> dict:
    return {k: str(v) for k, v in asdict(request.options).items() if k not in ("workers", "progress")}


def _training_inputs(request: Request, images: Path) -> dict[str, Path]:
    inputs = {"train_prompts": request.train_prompts, "images": images}
    if request.options.backbone_weights:
        inputs["backbone_weights"] = request.options.backbone_weights
    return inputs


def _fingerprint(request: Request, described: dict[str, dict]) -> dict:
    """What the checkpoints depend on: the tool, the training options and the training inputs' content (not the
    test set, the settings or seeds run, or the bootstrap: those reuse the checkpoints)."""
    facts = {
        "tool_version": __version__,
        "val_fraction": request.val_fraction,
        "synthetic_selection": request.synthetic_selection,
        "options": _options(request),
        "inputs": {k: v["sha256"] for k, v in sorted(described.items()) if k != "test_prompts"},
    }
    return json.loads(json.dumps(facts, sort_keys=True))


def _own_checkpoints(folder: Path, fingerprint: dict) -> None:
    """A killed run resumes from `folder` only when its checkpoints were written for the same fingerprint; others
    (a run with other options or inputs) are removed before training starts."""
    marker = folder / "run.json"
    if folder.exists() and (not marker.is_file() or json.loads(marker.read_text()) != fingerprint):
        log.info("classify: %s holds checkpoints of other options or inputs; starting afresh", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, fingerprint)


def _await_checkpoints(folder: Path, fingerprint: dict) -> None:
    """A DDP follower decides nothing about resuming before rank 0 has made the checkpoints folder this run's."""
    marker, deadline = folder / "run.json", time.monotonic() + FOLLOWER_WAIT_S
    while not (marker.is_file() and json.loads(marker.read_text()) == fingerprint):
        if time.monotonic() > deadline:
            raise MissingResourceError(f"{marker}: rank 0 did not prepare the checkpoints in {FOLLOWER_WAIT_S} s")
        time.sleep(0.5)


def _datasets(request: Request, train: pd.DataFrame, synth: pd.DataFrame):
    """(real training rows, synthetic training twins, {'real': validation, 'synthetic': held-out validation}). The
    held-out synthetic set is the twins of the real validation prompts: never trained on, and patient-disjoint from
    training because the validation split is."""
    real_train, val = validation_split(train, request.val_fraction, seed=0)
    assert not set(real_train["patient_id"].dropna()) & set(val["patient_id"].dropna())
    synth_train = synth[synth["prompt_id"].isin(real_train["prompt_id"])]
    return real_train, synth_train, {"real": val, "synthetic": synth[synth["prompt_id"].isin(val["prompt_id"])]}


def _plan(request: Request, setting: str, seed: int, real_train, synth_train, validation, images) -> list[tuple]:
    """The phases of a setting and seed, each (training frame, selection rule); refuses a phase it cannot train."""
    plan = []
    for number, frame in enumerate(phases(setting, real_train, synth_train, seed)):
        rule = selection_rule(frame, request.synthetic_selection)
        if frame.empty:
            raise BadInputError(f"{images}: {setting} has no training image in phase {number} (no synthetic twin?)")
        if rule == "held-out-synthetic" and validation["synthetic"].empty:
            raise BadInputError(
                f"{images}: none of the {len(validation['real'])} validation prompts has a synthetic twin, so "
                f"{setting} cannot select its checkpoint on held-out synthetic images; generate their twins or pass "
                "--synthetic-selection last-epoch"
            )
        plan.append((frame, rule))
    return plan


def follow(request: Request) -> None:
    """A DDP rank other than 0: the same training steps as rank 0 (which owns the folder, the lock and every
    output), nothing written."""
    train, test, synth, _, images, _ = prepare(request)
    real_train, synth_train, validation = _datasets(request, train, synth)
    cache = ImageCache(request.cache_dir, request.options.size)
    checkpoints = _stage(request).dir / "checkpoints"  # rank 0's folder: the checkpoints it resumes from
    _await_checkpoints(checkpoints, _fingerprint(request, describe_inputs(_training_inputs(request, images))))
    for setting in request.settings:
        for seed in request.seeds:
            plan = _plan(request, setting, seed, real_train, synth_train, validation, images)
            folder = checkpoints / f"{setting}-seed{seed}"
            train_and_predict(plan, validation, test, seed, request.options, folder, cache)


def _warn_constant_validation(validation: dict[str, pd.DataFrame], policy: str) -> None:
    for name, frame in validation.items():
        y, mask = targets(frame, policy)
        if len(frame) and not any(0 < y[mask[:, c], c].sum() < mask[:, c].sum() for c in range(y.shape[1])):
            log.warning(
                "classify: no label of the %s validation set has both classes: its macro-AUROC is constant "
                "and selects the first epoch",
                name,
            )


def run(request: Request) -> tuple[StageRun, bool]:
    stage = _stage(request)
    with Lifecycle(stage, force=request.force) as life:
        train, test, synth, without_twin, images, weights = prepare(request)
        params = {
            "settings": list(request.settings),
            "seeds": list(request.seeds),
            "val_fraction": request.val_fraction,
            "bootstrap": request.bootstrap,
            "ci_level": request.ci_level,
            "synthetic_selection": request.synthetic_selection,
            "policy": POLICIES[request.options.policy],
            "options": _options(request),
        }
        inputs = {**_training_inputs(request, images), "test_prompts": request.test_prompts}
        if life.up_to_date(params, inputs):
            return stage, False
        real_train, synth_train, validation = _datasets(request, train, synth)
        plans = {
            (setting, seed): _plan(request, setting, seed, real_train, synth_train, validation, images)
            for setting in request.settings
            for seed in request.seeds
        }
        life.start(params, inputs, weights=weights, clear=list(OUTPUTS))
        checkpoints = stage.dir / "checkpoints"
        _own_checkpoints(checkpoints, _fingerprint(request, stage.manifest["inputs"]))
        _warn_constant_validation(validation, request.options.policy)
        cache = ImageCache(request.cache_dir, request.options.size)
        results, sizes, resumed, selection = [], {}, [], {}
        for (setting, seed), plan in plans.items():
            log.info("classify: %s, seed %d", setting, seed)
            sizes[setting] = {
                f"phase{i}": frame["source"].value_counts().to_dict() for i, (frame, _) in enumerate(plan)
            }
            folder = checkpoints / f"{setting}-seed{seed}"
            probs, again, records = train_and_predict(plan, validation, test, seed, request.options, folder, cache)
            records = [{**r, "trained_on": _sources(frame)} for r, (frame, _) in zip(records, plan, strict=True)]
            selection[f"{setting}/seed{seed}"] = records
            resumed += again
            results.append((setting, seed, probs, records))
        outputs, patients = _write(stage, request, results, validation, test)
        life.update(
            counts={
                "real_pool": len(train),
                "train_real": len(real_train),
                "validation": len(validation["real"]),
                "validation_synthetic": len(validation["synthetic"]),
                "test": len(test),
                "test_patients": patients,
                "synthetic_twins": len(synth),
                "prompts_without_twin": without_twin,
            },
            policy=POLICIES[request.options.policy],
            training_sets=sizes,
            selection_rules={rule: RULES[rule] for rule in {r["rule"] for rs in selection.values() for r in rs}},
            selection=selection,
            bootstrap={"unit": "patient (a row without a patient id is its own patient)", "seed": BOOTSTRAP_SEED},
            resumed=resumed,
        )
        life.finish(outputs)
    return stage, True


def _sources(frame: pd.DataFrame) -> str:
    return "+".join(sorted(frame["source"].unique()))


def _label_set(averaged: tuple[str, ...]) -> str:
    missing = [label for label in CHEXPERT_LABELS if label not in averaged]
    if not missing:
        return f"all {len(CHEXPERT_LABELS)} labels"
    if len(averaged) >= len(missing):
        return f"all {len(CHEXPERT_LABELS)} labels but {', '.join(missing)}"
    return ", ".join(averaged) if averaged else "no label"


def _ci_note(interval: Interval | None, unit: str = "patient resamples") -> str | None:
    if interval is None or not interval.total:
        return None
    if interval.kept == interval.total:
        return f"CI: {interval.total} {unit}"
    lost = interval.total - interval.kept
    kept = f"{interval.kept} of {interval.total} {unit} kept ({lost} lost a class)"
    return f"CI: {kept}" if interval.low is not None else f"no CI: only {kept}, fewer than half"


def _note(metric: str, value: float, averaged: tuple[str, ...], *parts: str | None) -> str | None:
    """The row's note: why a value is missing, else the macro label set, the spread and the CI's resamples."""
    if value is None or np.isnan(value):
        return "undefined: the test set has no positive or no negative"
    notes = [f"macro over {_label_set(averaged)} (both classes in the test set)"] if "macro" in metric else []
    return "; ".join(notes + [p for p in parts if p]) or None


def _selection_note(records: list[dict]) -> str:
    """Per phase: the rule, what it means, and the epoch it chose."""
    return "; ".join(
        (f"phase {i} on {r['trained_on']} images: " if len(records) > 1 else "")
        + f"{r['rule']} ({RULES[r['rule']]}): epoch {r['epoch']} of {r['epochs_trained']} trained, at most "
        f"{r['max_epochs']}"
        for i, r in enumerate(records)
    )


def _write(stage: StageRun, request: Request, results: list, validation: dict, test: pd.DataFrame):
    y_test, m_test = targets(test, request.options.policy)
    groups = patient_groups(test["patient_id"], test["prompt_id"])
    patients = len(pd.unique(groups))
    weights = resample_weights(groups, draw_patients(patients, request.bootstrap, seed=BOOTSTRAP_SEED))
    rows, original, predictions = [], [], []
    by_setting: dict[str, list] = {}
    for setting, seed, probs, records in results:
        log.info("classify: metrics of %s, seed %d, %d patient resamples", setting, seed, request.bootstrap)
        tuning = validation[validation_set(records[-1]["rule"])]
        y_val, m_val = targets(tuning, request.options.policy)
        thresholds = tune_thresholds(y_val, probs["val"], m_val)
        report = evaluate(
            y_test, probs["test"], m_test, CHEXPERT_LABELS, thresholds, weights=weights, level=request.ci_level
        )
        by_setting.setdefault(setting, []).append(report)
        subset = f"{setting}/seed{seed}"
        for name, value in report.values().items():
            ci = report.intervals.get(name)
            note = _note(name, value, report.averaged, _ci_note(ci))
            rows.append(_row(name, subset, value, ci, len(test), note))
        rows.append(_row("selected_epoch", subset, records[-1]["epoch"], None, None, _selection_note(records)))
        original.append(_original_record(setting, seed, report, y_test, m_test, probs["test"]))
        frame = pd.DataFrame(probs["test"], columns=[f"p_{label}" for label in CHEXPERT_LABELS])
        predictions.append(frame.assign(setting=setting, seed=seed, prompt_id=test["prompt_id"].to_numpy()))
    for setting, reports in by_setting.items():  # the mean over seeds, its std and a two-level bootstrap CI
        seed_draws = draw_seeds(len(reports), request.bootstrap, seed=BOOTSTRAP_SEED + 1) if request.bootstrap else None
        for name, mean in mean_over_seeds(reports, seed_draws, request.ci_level).items():
            spread = f"mean over {len(reports)} seeds, std {mean.std:.4g}"
            ci = _ci_note(mean.interval, "resamples of patients and seeds")
            note = _note(name, mean.value, reports[0].averaged, spread, ci)
            rows.append(_row(name, setting, mean.value, mean.interval, len(test), note))
    outputs = {
        "metrics": write_table(
            metrics_frame(rows, model=request.model, run_id=request.run_id, stage=STAGE),
            stage.dir / METRICS,
            "metrics",
            producer=PRODUCER,
            run_id=request.run_id,
        )
    }
    outputs["original"] = stage.dir / ORIGINAL
    write_text_atomic(outputs["original"], pd.DataFrame(original).to_csv(index=False))
    first = {}
    for setting, _, probs, _ in results:
        first.setdefault(setting, probs["test"])
    panels = [(f"{setting} (seed {request.seeds[0]})", y_test, p, m_test) for setting, p in first.items()]
    outputs["roc"] = roc_png(panels, CHEXPERT_LABELS, stage.dir / ROC)
    outputs["predictions"] = stage.dir / PREDICTIONS
    write_text_atomic(outputs["predictions"], pd.concat(predictions, ignore_index=True).to_csv(index=False))
    return outputs, patients


def _original_record(setting, seed, report, y, mask, probs) -> dict:
    """CheXGenBench's columns (threshold 0.5); its macro means over the row's label set, named in `macro_labels`,
    and every per-label value of a label outside that set undefined, as in the metrics table."""
    hard = probs >= 0.5
    per_label = {"precision": [], "recall": []}
    for c in range(len(CHEXPERT_LABELS)):
        yc, hc = y[mask[:, c], c], hard[mask[:, c], c]
        defined = CHEXPERT_LABELS[c] in report.averaged
        per_label["precision"].append(precision_score(yc, hc, zero_division=0) if defined else np.nan)
        per_label["recall"].append(recall_score(yc, hc, zero_division=0) if defined else np.nan)
    chosen = [CHEXPERT_LABELS.index(label) for label in report.averaged]
    record = {"setting": setting, "seed": seed, "accuracy": report.overall["accuracy"]}
    record["precision_micro"] = precision_score(y[mask], hard[mask], zero_division=0)
    record["recall_micro"] = recall_score(y[mask], hard[mask], zero_division=0)
    record["f1_micro"] = report.overall["f1_micro_05"]
    for name in ("precision", "recall"):
        values = np.array(per_label[name])[chosen]
        record[f"{name}_macro"] = float(values.mean()) if len(values) else np.nan
    record["f1_macro"] = report.overall["f1_macro_05"]
    record["auc_macro"] = report.overall["auc_macro"]
    for c, label in enumerate(CHEXPERT_LABELS):
        record[f"precision_{label}"] = per_label["precision"][c]
        record[f"recall_{label}"] = per_label["recall"][c]
        record[f"f1_{label}"] = report.per_class["f1_05"][c]
        record[f"auc_{label}"] = report.per_class["auc"][c]
    record["macro_labels"] = ";".join(report.averaged)
    return record


def _row(metric: str, subset: str, value, ci: Interval | None, n_real, note) -> MetricRow:
    return MetricRow(metric, value, subset, None, ci.low if ci else None, ci.high if ci else None, n_real, note=note)
