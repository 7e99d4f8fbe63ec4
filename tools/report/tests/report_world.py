"""A small run folder in the stages' real formats, written with the stages' own writers (StageRun manifests,
chexbench_schema tables, grey PNGs): prompts with real images, generate, embed, fidelity, align, privacy, classify.
Nothing heavy runs: the metric values are made up, seeded, and kept here for the tests to compare against."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.imageio import save_grey_png
from chexbench_common.rundir import StageRun
from chexbench_schema import CHEXPERT_LABELS, write_embeddings, write_table
from chexbench_schema.tables import prompt_id
from PIL import Image

SIZE = 24
# the labels of the prompts: 6 labels have positives, the other 8 none
POSITIVE = ("Atelectasis", "Cardiomegaly", "Edema", "Pleural Effusion", "No Finding", "Support Devices")
N_PROMPTS = 9
DIM = 8


@dataclass
class RunFacts:
    """What a test needs to know about a built run, independently of the report."""

    dir: Path
    prompts: Path
    real_root: Path
    synth_files: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, pd.DataFrame] = field(default_factory=dict)
    embeddings: dict[str, tuple] = field(default_factory=dict)  # source -> (ids, vectors)


def _stage(results: Path, model: str, run_id: str, name: str) -> StageRun:
    return StageRun(results, model, run_id, name, tool_version="0.1.0")


def _metrics_frame(model: str, run_id: str, stage: str, rows: list[dict]) -> pd.DataFrame:
    base = {"extractor": None, "ci_low": None, "ci_high": None, "n_real": None, "n_synth": None, "note": None}
    return pd.DataFrame([{"run_id": run_id, "model": model, "stage": stage, **base, **r} for r in rows])


def _finish_metrics(stage: StageRun, facts: RunFacts, rows: list[dict], extra: dict | None = None) -> None:
    frame = _metrics_frame(stage.model, stage.run_id, stage.stage, rows)
    path = write_table(frame, stage.dir / "metrics.parquet", "metrics", producer="test", run_id=stage.run_id)
    facts.metrics[stage.stage] = frame
    stage.finish({"metrics": path, **(extra or {})})


def _grey(rng: np.random.Generator, bright: float) -> np.ndarray:
    return (255 * np.clip(rng.normal(bright, 0.1, (SIZE, SIZE)), 0, 1)).astype(np.uint8)


def build_inputs(root: Path, rng: np.random.Generator) -> tuple[Path, Path, pd.DataFrame]:
    """Prompts table (labels cycling through POSITIVE) and one real PNG per prompt under real_root."""
    real_root = root / "real"
    rows = []
    for i in range(N_PROMPTS):
        text = f"Finding number {i}: {POSITIVE[i % len(POSITIVE)].lower()}."
        labels = {label: None for label in CHEXPERT_LABELS}
        labels[POSITIVE[i % len(POSITIVE)]] = 1
        if i % 2:
            labels[POSITIVE[(i + 1) % len(POSITIVE)]] = 0
        path = f"p{i:02d}/real-{i}.png"
        save_grey_png(_grey(rng, 0.3 + 0.05 * i), real_root / path)
        ids = {"patient_id": f"p{i:08d}", "study_id": None, "id": None, "view": "PA"}
        rows.append({"split": "test", "prompt_id": prompt_id(text), "prompt": text, "image_path": path} | ids | labels)
    prompts = pd.DataFrame(rows)
    path = write_table(prompts, root / "prompts.parquet", "prompts", producer="test", extra={"caption_column": "t"})
    return path, real_root, prompts


def build_run(
    results: Path,
    model: str = "m",
    run_id: str = "r",
    *,
    seed: int = 42,
    fid: tuple[float, float, float] = (50.0, 45.0, 55.0),
    stages: tuple[str, ...] = ("generate", "embed", "fidelity", "align", "privacy", "classify"),
    failed: dict[str, str] | None = None,
) -> RunFacts:
    """A run folder; `fid` is FID (RadDino) over all with its CI; `failed` maps a stage to the reason it failed."""
    rng = np.random.default_rng(seed)
    inputs = results / model / run_id / "inputs"
    prompts_path, real_root, prompts = build_inputs(inputs, rng)
    facts = RunFacts(results / model / run_id, prompts_path, real_root)
    failed = failed or {}
    for name in stages:
        stage = _stage(results, model, run_id, name)
        stage.start({"seed": seed} if name != "generate" else {"settings": {"seed": seed}}, {"prompts": prompts_path})
        if name in failed:
            stage.fail(failed[name])
            continue
        BUILDERS[name](stage, facts, prompts, rng, fid)
    return facts


def _generate(stage: StageRun, facts: RunFacts, prompts: pd.DataFrame, rng, fid) -> None:
    rows = []
    for i, pid in enumerate(prompts["prompt_id"]):
        rel = f"{pid}-0.png"
        save_grey_png(_grey(rng, 0.6), stage.dir / "images" / rel)
        sha = hashlib.sha256((stage.dir / "images" / rel).read_bytes()).hexdigest()
        facts.synth_files[f"{pid}-0"] = stage.dir / "images" / rel
        rows.append(
            {
                "image_id": f"{pid}-0",
                "prompt_id": pid,
                "model": stage.model,
                "path": rel,
                "seed": 1000 + i,
                "sample_index": 0,
                "width": SIZE,
                "height": SIZE,
                "steps": 2,
                "guidance": 4.5,
                "dtype": "float32",
                "sha256": sha,
            }
        )
    table = write_table(
        pd.DataFrame(rows), stage.dir / "images.parquet", "images", producer="test", extra={"images_root": "images"}
    )
    stage.manifest["weights"] = {"model_fingerprint": "f" * 64}
    stage.finish({"images": table, "images_dir": stage.dir / "images"})


def _embed(stage: StageRun, facts: RunFacts, prompts: pd.DataFrame, rng, fid) -> None:
    ids = {"real": list(prompts["prompt_id"]), "synthetic": [f"{p}-0" for p in prompts["prompt_id"]]}
    outputs = {}
    for source, offset in (("real", 0.0), ("synthetic", 1.5)):
        vectors = rng.normal(offset, 1.0, (len(ids[source]), DIM)).astype(np.float32)
        facts.embeddings[source] = (ids[source], vectors)
        frame = pd.DataFrame({"image_id": ids[source], "source": source, "extractor": "raddino"})
        outputs[f"{source}-raddino"] = write_embeddings(
            frame,
            vectors,
            stage.dir / f"{source}-raddino.parquet",
            producer="test",
            extractor="raddino",
            weights_sha256="e" * 64,
            preprocessing="none",
        )
    stage.manifest["params"] |= {"real_root": str(facts.real_root), "images_root": str(facts.dir / "generate/images")}
    stage.manifest["inputs"]["images"] = {"path": str(facts.dir / "generate/images.parquet"), "sha256": "0" * 64}
    stage.finish(outputs)


def labelled_rows(metric: str, extractor: str | None, rng, scale: float, with_ci: bool) -> list[dict]:
    """One row per label with positives; `Pleural Other` has a row without a value (n/a)."""
    rows = []
    for label in POSITIVE:
        value = float(scale * rng.uniform(0.5, 1.5))
        ci = {"ci_low": value * 0.9, "ci_high": value * 1.1} if with_ci else {}
        rows.append({"metric": metric, "subset": label, "extractor": extractor, "value": value, **ci, "n_real": 3})
    rows.append({"metric": metric, "subset": "Pleural Other", "extractor": extractor, "value": None, "note": "empty"})
    return rows


CT_NOTE = "no cell of the data-copying test has 20 synthetic and 1 held-out image"


def _fidelity(stage: StageRun, facts: RunFacts, prompts, rng, fid) -> None:
    value, low, high = fid
    rows = [
        {"metric": "FID", "subset": "all", "extractor": "raddino", "value": value, "ci_low": low, "ci_high": high},
        {"metric": "FID", "subset": "all", "extractor": "inception", "value": value * 10, "ci_low": None},
        {"metric": "KID", "subset": "all", "extractor": "raddino", "value": 0.02},
        {"metric": "KID_std", "subset": "all", "extractor": "raddino", "value": 0.001},
        {"metric": "precision", "subset": "all", "extractor": "raddino", "value": 0.6, "ci_low": 0.5, "ci_high": 0.7},
        *labelled_rows("FID", "raddino", rng, value, True),
        *labelled_rows("KID", "raddino", rng, 0.02, False),
        *labelled_rows("precision", "raddino", rng, 0.5, True),  # not charted: fidelity charts its chosen metrics
        {"metric": "CMMD", "subset": "all", "extractor": "clip", "value": 0.4, "ci_low": 0.3, "ci_high": 0.5},
        *labelled_rows("CMMD", "clip", rng, 0.4, True),
        *labelled_rows("FID", "dinov2", rng, value * 2, True),  # FD_DINOv2
        *labelled_rows("vendi", "raddino", rng, 3.0, True),
        *labelled_rows("vendi_real", "raddino", rng, 4.0, True),  # drawn beside vendi, not charted on its own
        *(
            {"metric": "C_T", "subset": label, "extractor": "inception", "value": None, "note": CT_NOTE}
            for label in POSITIVE
        ),
    ]
    stage.manifest["params"]["extra_info"] = f"{stage.model} seed {stage.manifest['params']['seed']}"
    _finish_metrics(stage, facts, rows)


def _align(stage: StageRun, facts: RunFacts, prompts, rng, fid) -> None:
    overall = {"metric": "alignment", "subset": "all", "extractor": "biovil-t", "value": 0.4}
    rows = [overall | {"ci_low": 0.35, "ci_high": 0.45}, *labelled_rows("alignment", "biovil-t", rng, 0.4, True)]
    _finish_metrics(stage, facts, rows)


def _privacy(stage: StageRun, facts: RunFacts, prompts: pd.DataFrame, rng, fid) -> None:
    pairs = pd.DataFrame(
        {
            "image_id": [f"{p}-0" for p in prompts["prompt_id"][:3]],
            "prompt_id": prompts["prompt_id"][:3],
            "train_prompt_id": prompts["prompt_id"][3:6].to_numpy(),
            "train_patient": "image:x",
            "train_image_path": prompts["image_path"][3:6].to_numpy(),
            "partner_space": "inception",
            "dcr": [0.1, 0.2, 0.3],
            "nndr": [0.5, 0.6, 0.7],
            "reid_nn_score": [0.9, 0.8, 0.7],
            "reid_source": [0.9, 0.8, 0.7],
            "rules": ["dcr", "-", "-"],
        }
    )
    pairs.to_csv(stage.dir / "flagged_pairs.csv", index=False)
    Image.new("L", (60, 40), 128).save(stage.dir / "flagged_pairs.png")
    thresholds = {
        "dcr/inception": {"value": 0.15, "source": "0.05 quantile", "informative": True},
        "delta": {"value": 0.5, "source": "parameter", "informative": False},
    }
    (stage.dir / "thresholds.json").write_text(json.dumps(thresholds))
    (stage.dir / "spaces.json").write_text(json.dumps(PRIVACY_SPACES))
    stage.manifest["params"]["real_root"] = str(facts.real_root)
    stage.manifest["inputs"]["images"] = {"path": str(facts.dir / "generate/images.parquet"), "sha256": "0" * 64}
    stage.manifest["warnings"] = [PRIVACY_WARNING]
    rows = [
        {"metric": "reid_mean", "subset": "all", "extractor": "reid", "value": 0.51, "ci_low": 0.5, "ci_high": 0.52},
        {"metric": "reid_max", "subset": "all", "extractor": "reid", "value": 0.9},
        {"metric": "flag_rate_any", "subset": "all", "value": 1 / 9, "ci_low": 0.02, "ci_high": 0.4},
        {"metric": "flag_rate_any", "subset": "all", "extractor": "inception", "value": 1 / 9},
        {"metric": "holdout_specificity_any", "subset": "all", "value": 0.9, "ci_low": 0.6, "ci_high": 0.98},
    ]
    for space in ("inception", None):
        for strength, caught in zip(LADDER, (1.0, 1.0, 0.5, 0.0), strict=True):
            ci = {"ci_low": caught / 2, "ci_high": (1 + caught) / 2}
            rows.append({"metric": "control_sensitivity_any", "subset": strength, "extractor": space, "value": caught})
            rows[-1] |= ci
            if space:
                rows.append({"metric": "control_source_rank1", "subset": strength, "extractor": space, "value": 1.0})
        limit = "every copy caught up to 'mild' (exact 6/6, mild 6/6, moderate 3/6, strong 0/6)"
        rows.append({"metric": "control_detection_limit", "subset": "all", "extractor": space, "value": 2.0})
        rows[-1]["note"] = limit
    _finish_metrics(
        stage,
        facts,
        rows,
        {
            "flagged_pairs": "flagged_pairs.csv",
            "contact_sheet": "flagged_pairs.png",
            "thresholds": "thresholds.json",
            "spaces": "spaces.json",
        },
    )


LADDER = ("exact", "mild", "moderate", "strong")
PRIVACY_SPACES = {
    "inception": {"weights": "real", "weights_evidence": "pinned sha256", "informative": True, "spread": 0.05},
    "reid": {"weights": "stand-in", "weights_evidence": "8 channels wide", "informative": False, "spread": 1e-6},
}
PRIVACY_SPACES = {
    name: space | {"spread_floor": 1e-3, "spread_measure": "sd", "protocol_latent_space": name == "inception"}
    for name, space in PRIVACY_SPACES.items()
}
PRIVACY_WARNING = "reid not informative: the standard deviation of the holdout's best re-ID scores 1e-06 is below"


def _classify(stage: StageRun, facts: RunFacts, prompts, rng, fid) -> None:
    rows = []
    for setting in ("all_original", "all_synthetic"):
        auc = float(rng.uniform(0.6, 0.8))
        rows.append({"metric": "auc_macro", "subset": f"{setting}/seed0", "value": auc, "ci_low": auc - 0.1})
        rows[-1]["ci_high"] = auc + 0.1
        rows.append({"metric": "auc_macro", "subset": setting, "value": auc, "note": "mean over 1 seeds, std 0"})
        for label in CHEXPERT_LABELS:
            value = float(rng.uniform(0.5, 0.9)) if label in POSITIVE else None
            ci = {"ci_low": value - 0.1, "ci_high": value + 0.1} if value is not None else {}
            rows.append({"metric": f"auc_{label}", "subset": f"{setting}/seed0", "value": value, **ci})
        rule, epoch = ("held-out-synthetic", 4) if setting == "all_synthetic" else ("real-validation", 3)
        note = f"{rule} (best validation macro-AUROC): epoch {epoch} of 5 trained, at most 20"
        rows.append({"metric": "selected_epoch", "subset": f"{setting}/seed0", "value": epoch, "note": note})
    Image.new("RGB", (90, 60), (255, 255, 255)).save(stage.dir / "roc.png")
    _finish_metrics(stage, facts, rows, {"roc": "roc.png"})


BUILDERS = {
    "generate": _generate,
    "embed": _embed,
    "fidelity": _fidelity,
    "align": _align,
    "privacy": _privacy,
    "classify": _classify,
}


def run_args(results: Path, model: str = "m", run_id: str = "r") -> list[str]:
    """The command line of `chexbench-report run` for one run."""
    return ["run", "--results", str(results), "--model", model, "--run-id", run_id]


def report_json(run: RunFacts) -> dict:
    """The report.json that `chexbench-report run` wrote for a run."""
    return json.loads((run.dir / "report" / "report.json").read_text())
