"""The report's data -> one self-contained HTML page: Jinja2 templates (package data), charts as inline SVG,
pictures as data URIs, CSS inline; no script, no external reference of any kind."""

from __future__ import annotations

import math
import os
from pathlib import Path

import jinja2
import numpy as np
from chexbench_common.errors import ChexbenchError
from chexbench_common.progress import track
from markupsafe import Markup

from . import charts, thumbs
from .collect import PIPELINE


def fmt(value, digits: int = 4) -> str:
    """A number for a table cell: 4 significant digits, integers as they are, '—' when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.{digits}g}"


def fmt_ci(row: dict) -> str:
    if row.get("ci_low") is None or row.get("ci_high") is None:
        return ""
    return f"[{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"


THUMB_KEYS = ("file", "train_file", "real_file")  # X-rays shown as thumbnails
# the validation charts' points, by the relation's verdict (the badges' colours of report.css)
VERDICT_COLOURS = {"fail": "#c0392b", "underpowered": "#b7791f", "stand-in": "#6b7280", "pass": "#2f855a"}
FIGURE_KEYS = ("roc", "sheet")  # stage figures shown as they are (downscaled when wide)


def _paths(node, keys: tuple[str, ...]):
    """Every non-empty value under one of `keys`, anywhere in the report's data."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                yield value
            else:
                yield from _paths(value, keys)
    elif isinstance(node, list):
        for item in node:
            yield from _paths(item, keys)


# the report's file paths: the pictures and the prompts table its provenance names
PATH_KEYS = (*THUMB_KEYS, *FIGURE_KEYS, "path")


def portable(node, folder: Path, root: Path):
    """A copy of the report's data whose file paths under the results `root` are relative to `folder` (the
    report's own): report.json then reads the same under every runner and stays valid when the results move."""
    if isinstance(node, dict):
        return {
            key: _relative(value, folder, root)
            if key in PATH_KEYS and isinstance(value, str)
            else portable(value, folder, root)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [portable(item, folder, root) for item in node]
    return node


def _relative(path: str, folder: Path, root: Path) -> str:
    absolute = Path(path).absolute()
    if not absolute.is_relative_to(root.absolute()):
        return path
    return os.path.relpath(absolute, folder.absolute())


class Pictures:
    """Data URIs of the page's pictures, each file decoded once (with progress) before the page is rendered; a file
    that cannot be read becomes a note on the page instead of a broken image."""

    def __init__(self, report: dict):
        self.uris: dict[str, str | None] = {}
        self.problems: list[str] = []
        jobs = [(p, thumbs.thumbnail) for p in dict.fromkeys(_paths(report, THUMB_KEYS))]
        jobs += [(p, thumbs.figure) for p in dict.fromkeys(_paths(report, FIGURE_KEYS))]
        for path, encode in track(jobs, desc="report pictures", unit="img"):
            try:
                self.uris[path] = encode(path)
            except (ChexbenchError, OSError) as exc:
                self.problems.append(f"{path}: {str(exc).splitlines()[0]}")
                self.uris[path] = None

    def __getitem__(self, path: str | None) -> str | None:
        return self.uris.get(path) if path else None


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("chexbench_report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt
    env.filters["ci"] = fmt_ci
    return env


def _chart_jobs(report: dict) -> list[tuple[str, object]]:
    """(id, drawing function) of every chart of the page."""
    jobs = []
    for i, chart in enumerate(report["pathology"]):
        key = f"pathology-{i}"
        if chart["empty_note"] is None:  # a chart without any value is its note on the page
            jobs.append((key, lambda c=chart, k=key: charts.bar_chart(k, c["points"], c["metric"], c["reference"])))
    for i, chart in enumerate((report["classification"] or {}).get("auroc", [])):
        key = f"auroc-{i}"
        jobs.append((key, lambda c=chart, k=key: charts.bar_chart(k, c["points"], "AUROC")))
    for i, rel in enumerate((report.get("validation") or {}).get("relations", [])):
        key, colour = f"validation-{i}", VERDICT_COLOURS.get(rel["verdict"], charts.BAR)
        label = rel["metric"] + (f" ({rel['extractor']})" if rel["extractor"] else "")
        jobs.append((key, lambda r=rel, k=key, y=label, c=colour: charts.level_chart(k, r["points"], y, c)))
    for i, emb in enumerate((report["embedding"] or {}).get("maps", [])):
        axes, real, synth = tuple(emb["axes"]), np.asarray(emb["real"]), np.asarray(emb["synthetic"])
        jobs.append((f"map-{i}", lambda r=real, s=synth, a=axes, k=f"map-{i}": charts.scatter_chart(k, r, s, a)))
    return jobs


def render_html(report: dict, template: str = "report.html.j2") -> tuple[str, list[str]]:
    """The page, and the pictures that could not be shown (file and reason)."""
    svgs = {key: Markup(draw()) for key, draw in track(_chart_jobs(report), desc="report charts", unit="chart")}
    pictures = Pictures(report)
    html = (
        _environment()
        .get_template(template)
        .render(
            r=report,
            charts=svgs,
            pictures=pictures,
            css=_css(),
            stages={s["stage"]: s for s in report["stages"]},
            pipeline=PIPELINE,
        )
    )
    return html, pictures.problems


def render_page(template: str, **context) -> str:
    """Any other page of the package (the leaderboard) with the shared CSS."""
    return _environment().get_template(template).render(css=_css(), **context)


def _css() -> Markup:
    return Markup(_environment().loader.get_source(_environment(), "report.css")[0])
