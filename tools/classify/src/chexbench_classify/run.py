"""`chexbench-classify run`: train every setting with every seed on the TRAIN prompts' real images and their
synthetic twins, test on the real TEST images, and tabulate (metrics table, the original's CSV, predictions)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.atomic import write_text_atomic
from chexbench_common.errors import BadInputError
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.paths import resolve_under
from chexbench_common.rundir import StageRun, generated_images
from chexbench_schema import CHEXPERT_LABELS, read_metadata, read_table, write_table
from sklearn.metrics import precision_score, recall_score

from . import __version__
from .data import ImageCache
from .labels import POLICIES, targets
from .metrics import evaluate, tune_thresholds
from .roc import roc_png
from .settings import SETTINGS, phases, validation_split
from .train import Options, train_and_predict

log = logging.getLogger(__name__)
STAGE = "classify"
PRODUCER = f"chexbench-{STAGE} {__version__}"
METRICS, ORIGINAL, PREDICTIONS, ROC = "metrics.parquet", "classification_metrics.csv", "predictions.csv", "roc.png"
OUTPUTS = (METRICS, ORIGINAL, PREDICTIONS, ROC)


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


def follow(request: Request) -> None:
    """A DDP rank other than 0: the same training steps as rank 0 (which owns the folder, the lock and every
    output), nothing written."""
    train, test, synth, _, _, _ = prepare(request)
    real_train, val = validation_split(train, request.val_fraction, seed=0)
    synth_train = synth[synth["prompt_id"].isin(real_train["prompt_id"])]
    cache = ImageCache(request.cache_dir, request.options.size)
    stage_dir = _stage(request).dir  # rank 0's folder: the checkpoints it resumes from
    for setting in request.settings:
        for seed in request.seeds:
            plan = phases(setting, real_train, synth_train, seed)
            folder = stage_dir / "checkpoints" / f"{setting}-seed{seed}"
            train_and_predict(plan, val, test, seed, request.options, folder, cache)


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
            "policy": POLICIES[request.options.policy],
            "options": {k: str(v) for k, v in asdict(request.options).items() if k not in ("workers", "progress")},
        }
        inputs = {"train_prompts": request.train_prompts, "test_prompts": request.test_prompts, "images": images}
        if request.options.backbone_weights:
            inputs["backbone_weights"] = request.options.backbone_weights
        if life.up_to_date(params, inputs):
            return stage, False
        life.start(params, inputs, weights=weights, clear=list(OUTPUTS))
        real_train, val = validation_split(train, request.val_fraction, seed=0)
        assert not set(real_train["patient_id"].dropna()) & set(val["patient_id"].dropna())
        synth_train = synth[synth["prompt_id"].isin(real_train["prompt_id"])]
        cache = ImageCache(request.cache_dir, request.options.size)
        results, sizes, resumed = [], {}, []
        for setting in request.settings:
            for seed in request.seeds:
                log.info("classify: %s, seed %d", setting, seed)
                folder = stage.dir / "checkpoints" / f"{setting}-seed{seed}"
                plan = phases(setting, real_train, synth_train, seed)
                sizes[setting] = {f"phase{i}": p["source"].value_counts().to_dict() for i, p in enumerate(plan)}
                probs, again = train_and_predict(plan, val, test, seed, request.options, folder, cache)
                resumed += again
                results.append((setting, seed, probs))
        outputs = _write(stage, request, results, val, test)
        life.update(
            counts={
                "real_pool": len(train),
                "train_real": len(real_train),
                "validation": len(val),
                "test": len(test),
                "synthetic_twins": len(synth),
                "prompts_without_twin": without_twin,
            },
            policy=POLICIES[request.options.policy],
            training_sets=sizes,
            resumed=resumed,
        )
        life.finish(outputs)
    return stage, True


def _write(stage: StageRun, request: Request, results: list, val: pd.DataFrame, test: pd.DataFrame) -> dict:
    y_val, m_val = targets(val, request.options.policy)
    y_test, m_test = targets(test, request.options.policy)
    rows, original, predictions = [], [], []
    by_setting: dict[str, list] = {}
    for setting, seed, probs in results:
        report = evaluate(
            y_test,
            probs["test"],
            m_test,
            CHEXPERT_LABELS,
            tune_thresholds(y_val, probs["val"], m_val),
            bootstrap=request.bootstrap,
            level=request.ci_level,
            seed=seed,
        )
        by_setting.setdefault(setting, []).append(report)
        subset = f"{setting}/seed{seed}"
        for name, value in report.overall.items():
            ci = report.intervals.get(name, (None, None))
            rows.append(
                _row(
                    request,
                    name,
                    subset,
                    value,
                    ci,
                    len(test),
                    None,
                    f"averaged over {len(report.averaged)} classes with both labels" if "macro" in name else None,
                )
            )
        for name, values in report.per_class.items():
            for label, value in zip(CHEXPERT_LABELS, values, strict=True):
                note = None if not np.isnan(value) else "undefined: the test set has no positive or no negative"
                ci = report.intervals.get(f"{name}_{label}", (None, None))
                rows.append(_row(request, f"{name}_{label}", subset, value, ci, len(test), None, note))
        hard = probs["test"] >= 0.5
        record = {"setting": setting, "seed": seed, "accuracy": report.overall["accuracy"]}
        for avg in ("micro", "macro"):
            record[f"precision_{avg}"] = precision_score(y_test, hard, average=avg, zero_division=0)
            record[f"recall_{avg}"] = recall_score(y_test, hard, average=avg, zero_division=0)
            record[f"f1_{avg}"] = report.overall["f1_micro_05"] if avg == "micro" else report.overall["f1_macro_05"]
        record["auc_macro"] = report.overall["auc_macro"]
        for c, label in enumerate(CHEXPERT_LABELS):
            record[f"precision_{label}"] = precision_score(y_test[:, c], hard[:, c], zero_division=0)
            record[f"recall_{label}"] = recall_score(y_test[:, c], hard[:, c], zero_division=0)
            record[f"f1_{label}"] = report.per_class["f1_05"][c]
            record[f"auc_{label}"] = report.per_class["auc"][c]
        original.append(record)
        frame = pd.DataFrame(probs["test"], columns=[f"p_{label}" for label in CHEXPERT_LABELS])
        predictions.append(frame.assign(setting=setting, seed=seed, prompt_id=test["prompt_id"].to_numpy()))
    for setting, reports in by_setting.items():  # mean ± std over seeds
        for name in reports[0].overall:
            values = np.array([r.overall[name] for r in reports])
            rows.append(
                _row(
                    request,
                    name,
                    setting,
                    float(np.nanmean(values)),
                    (None, None),
                    len(test),
                    None,
                    f"mean over {len(values)} seeds, std {np.nanstd(values, ddof=1) if len(values) > 1 else 0:.4g}",
                )
            )
    outputs = {
        "metrics": write_table(
            pd.DataFrame(rows), stage.dir / METRICS, "metrics", producer=PRODUCER, run_id=request.run_id
        )
    }
    outputs["original"] = stage.dir / ORIGINAL
    write_text_atomic(outputs["original"], pd.DataFrame(original).to_csv(index=False))
    first = {}
    for setting, _, probs in results:
        first.setdefault(setting, probs["test"])
    panels = [(f"{setting} (seed {request.seeds[0]})", y_test, p, m_test) for setting, p in first.items()]
    outputs["roc"] = roc_png(panels, CHEXPERT_LABELS, stage.dir / ROC)
    outputs["predictions"] = stage.dir / PREDICTIONS
    write_text_atomic(outputs["predictions"], pd.concat(predictions, ignore_index=True).to_csv(index=False))
    return outputs


def _row(request: Request, metric: str, subset: str, value, ci, n_real, n_synth, note) -> dict:
    def clean(x):
        return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)

    return {
        "run_id": request.run_id,
        "model": request.model,
        "stage": STAGE,
        "metric": metric,
        "subset": subset,
        "extractor": None,
        "value": clean(value),
        "ci_low": clean(ci[0]),
        "ci_high": clean(ci[1]),
        "n_real": n_real,
        "n_synth": n_synth,
        "note": note,
    }
