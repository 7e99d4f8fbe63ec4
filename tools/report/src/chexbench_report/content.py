"""A run's report as data: what report.json holds and report.html shows (pictures as file paths here; the page
inlines them)."""

from __future__ import annotations

from . import __version__
from .collect import Run
from .embedding import embedding_section
from .panels import classification_panel, privacy_panel, sample_grid
from .provenance import provenance
from .published import comparison
from .sources import run_pictures
from .summary import headline, pathology_series, records, stage_statuses
from .validation import validation_panel

# 1.1: the published-comparison block; 1.2: the validation panel; 1.3: chart notes, references; 1.4: relative
# picture paths in report.json
REPORT_VERSION = "1.4.0"


def build(run: Run, embedding_map: str = "pca") -> dict:
    pictures = run_pictures(run)
    finished = [s for s in run.stages if s.finished and s.metrics is not None]
    return {
        "report_version": REPORT_VERSION,
        "producer": f"chexbench-report {__version__}",
        "model": run.model,
        "run_id": run.run_id,
        "run_dir": str(run.dir),
        "stages": stage_statuses(run),
        "headline": {s.name: headline(s) for s in finished},
        "published": comparison(run),
        "pathology": pathology_series(run),
        "samples": None if pictures is None else {"rows": sample_grid(pictures), "notes": pictures.notes},
        "privacy": privacy_panel(run),
        "classification": classification_panel(run),
        "validation": validation_panel(run),
        "embedding": embedding_section(run, pictures, embedding_map),
        "provenance": provenance(run, pictures),
        "metrics": {s.name: records(s.metrics) for s in finished},
    }
