"""`chexbench-report run`: read a run folder, then write report.html and report.json through the stage lifecycle."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import time
from pathlib import Path

from chexbench_common.atomic import atomic_path, write_text_atomic
from chexbench_common.errors import MissingResourceError
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.rundir import MANIFEST, StageRun, run_folder

from . import __version__
from .collect import METRICS, REPORT, Run, check_run_folder, load_run
from .content import REPORT_VERSION, build
from .published import digest as published_digest
from .render import portable, render_html

log = logging.getLogger(__name__)
HTML, JSON = "report.html", "report.json"


def _inputs(run: Run) -> dict[str, Path]:
    """What the report depends on: every stage's manifest (it changes whenever the stage runs again) and metrics."""
    inputs = {}
    for stage in run.ran:
        inputs[f"{stage.name}_manifest"] = stage.folder / MANIFEST
        if (stage.folder / METRICS).is_file():
            inputs[f"{stage.name}_metrics"] = stage.folder / METRICS
    return inputs


def run(
    results: Path, model: str, run_id: str, *, force: bool = False, out: Path | None = None, embedding_map: str = "pca"
):
    """Write the report of one run; returns (stage run, whether work was done)."""
    check_run_folder(run_folder(results, model, run_id))  # before the lock creates anything
    if embedding_map == "umap" and importlib.util.find_spec("umap") is None:
        raise MissingResourceError("--map umap needs umap-learn (pip install umap-learn==0.5.12); or use --map pca")
    stage = StageRun(results, model, run_id, REPORT, tool_version=__version__)
    with Lifecycle(stage, force=force) as life:
        run_data = load_run(results, model, run_id)
        params = {"report_version": REPORT_VERSION, "embedding_map": embedding_map, "published": published_digest()}
        inputs = _inputs(run_data)
        if life.up_to_date(params, inputs):
            _copy(stage, out)
            return stage, False
        life.start(params, inputs, clear=[HTML, JSON])
        t0 = time.monotonic()
        report = build(run_data, embedding_map)
        html, problems = render_html(report)
        for problem in problems:
            log.warning("picture not shown: %s", problem)
        portable_report = portable(report, stage.dir, results)
        write_text_atomic(stage.dir / JSON, json.dumps(portable_report, indent=1, default=str) + "\n")
        write_text_atomic(stage.dir / HTML, html)
        life.update(
            seconds=round(time.monotonic() - t0, 3),
            html_bytes=len(html.encode()),
            stages={s.name: s.status for s in run_data.stages},
            pictures_not_shown=problems,
        )
        life.finish({"html": stage.dir / HTML, "json": stage.dir / JSON})
    _copy(stage, out)
    return stage, True


def _copy(stage: StageRun, out: Path | None) -> None:
    """--out: a copy of the page elsewhere (to mail or publish it), written atomically."""
    if out is not None:
        with atomic_path(out) as tmp:
            shutil.copyfile(stage.dir / HTML, tmp)
        log.info("copied the report to %s", out)
