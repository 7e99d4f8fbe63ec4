"""Read one run folder, Results/<model>/<run_id>/: every stage folder's manifest, status and metrics table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from chexbench_common.errors import BadInputError
from chexbench_common.rundir import MANIFEST, SUCCESS, is_finished, recorded_path, run_folder
from chexbench_schema import read_table
from chexbench_schema.manifest import read_manifest

# The stages of a full run, in pipeline order (their stage.yml `order`). Written out here because the report runs in
# its own image, without the other stages' declarations; a stage folder not listed here is shown all the same.
PIPELINE = ("generate", "embed", "fidelity", "align", "privacy", "classify", "llava-report")
REPORT = "report"
METRICS = "metrics.parquet"
NOT_RUN = "not run"


@dataclass
class Stage:
    """One stage folder: its status (success, failed, running, superseded or `not run`) and its metrics."""

    name: str
    folder: Path
    status: str
    reason: str | None = None
    manifest: dict = field(default_factory=dict)
    metrics: pd.DataFrame | None = None

    @property
    def finished(self) -> bool:
        return self.status == "success"

    def output(self, key: str, default: str) -> Path:
        """An output file named in the manifest, else its conventional name, in the stage folder."""
        return self.folder / self.manifest.get("outputs", {}).get(key, default)

    def input_path(self, key: str) -> Path | None:
        """The path the stage recorded for one of its inputs (as it was when the stage ran)."""
        recorded = self.manifest.get("inputs", {}).get(key, {}).get("path")
        return self.recorded_path(recorded) if recorded else None

    def recorded_path(self, recorded: str) -> Path:
        """A path from the manifest, resolved where the stage ran (chexbench_common.rundir.recorded_path)."""
        return recorded_path(self.manifest, recorded)


@dataclass
class Run:
    results: Path
    model: str
    run_id: str
    stages: list[Stage]

    @property
    def dir(self) -> Path:
        return run_folder(self.results, self.model, self.run_id)

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def finished(self, name: str) -> Stage | None:
        stage = self.stage(name)
        return stage if stage is not None and stage.finished else None

    @property
    def ran(self) -> list[Stage]:
        return [s for s in self.stages if s.status != NOT_RUN]

    def metrics(self) -> pd.DataFrame:
        """Every finished stage's metrics rows, in pipeline order."""
        frames = [s.metrics for s in self.stages if s.finished and s.metrics is not None and len(s.metrics)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["stage", "metric", "subset"])


def _status(folder: Path, manifest: dict) -> tuple[str, str | None]:
    if is_finished(folder):
        return "success", None
    status = str(manifest.get("status", "unknown"))
    if status == "failed":
        return "failed", str(manifest.get("error") or "no reason recorded")
    if status == "superseded":
        return "superseded", str(manifest.get("superseded_by", {}).get("reason", "superseded"))
    if status in ("running", "success"):  # success without _SUCCESS: the process died between the two writes
        return "running", f"no {SUCCESS}: still running, or killed before it finished"
    return status, None


def read_stage(run_dir: Path, name: str) -> Stage:
    folder = run_dir / name
    if not (folder / MANIFEST).is_file():
        return Stage(name, folder, NOT_RUN)
    manifest = read_manifest(folder)
    status, reason = _status(folder, manifest)
    stage = Stage(name, folder, status, reason, manifest)
    if stage.finished and (folder / METRICS).is_file():
        stage.metrics = read_table(folder / METRICS, "metrics")
    return stage


def stage_names(run_dir: Path) -> list[str]:
    """The pipeline's stages, then any other stage folder (one with a manifest) in name order; never the report."""
    found = sorted(p.parent.name for p in run_dir.glob(f"*/{MANIFEST}") if p.parent.name != REPORT)
    return list(PIPELINE) + [n for n in found if n not in PIPELINE]


def check_run_folder(run_dir: Path) -> None:
    """A run folder exists and some stage ran in it (the report's own folder does not count)."""
    if not run_dir.is_dir():
        raise BadInputError(f"{run_dir}: no such run folder; check --results, --model and --run-id")
    if not any(p.parent.name != REPORT for p in run_dir.glob(f"*/{MANIFEST}")):
        raise BadInputError(
            f"{run_dir}: no stage has run in this folder (no <stage>/{MANIFEST}); run the stages first (make bench)"
        )


def load_run(results: Path, model: str, run_id: str) -> Run:
    """Read a run folder; a missing folder, or one where no stage has run, is an error naming what to do."""
    run_dir = run_folder(results, model, run_id)
    check_run_folder(run_dir)
    return Run(Path(results), model, run_id, [read_stage(run_dir, n) for n in stage_names(run_dir)])


def find_runs(results: Path) -> list[tuple[str, str]]:
    """(model, run_id) of every run folder under `results` holding at least one finished stage with metrics."""
    found = []
    for metrics in sorted(Path(results).glob(f"*/*/*/{METRICS}")):
        stage_dir = metrics.parent
        if stage_dir.name != REPORT and is_finished(stage_dir):
            found.append((stage_dir.parent.parent.name, stage_dir.parent.name))
    return sorted(set(found))
