"""`chexbench-report leaderboard`: every finished run under a results root in one sortable page and two CSVs in the
original CheXGenBench layout (overall and per pathology), with CIs and a rank that accounts for them.

The rank rule: runs are ordered by the ranking column's point value (lower is better for FID, KID, FRD and the
re-ID scores, higher for the rest). The best run and every run whose confidence interval overlaps the best run's
interval share rank 1 ("tied with best"); a run without an interval counts as the interval [value, value]. The
remaining runs are ranked after them in value order (k+1, k+2, ... where k runs share rank 1). Runs without a value
of the ranking column are not ranked.

Runs of a model CheXGenBench published values for (or of an alias of one, or the demo, marked not comparable) get
their published values beside theirs in leaderboard_published.csv and the page's last section: the difference (run
minus published) and whether the published value lies in the run's CI.

A run whose folder cannot be read (a malformed metrics table or manifest) is left out with one warning line naming it
and why; the others make the leaderboard. Only when no run can be read is it an error.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import write_text_atomic
from chexbench_common.errors import BadInputError, ChexbenchError
from chexbench_schema import CHEXPERT_LABELS, ORIGINAL_LEADERBOARD_COLUMNS, read_metadata

from .collect import Run, find_runs, load_run
from .provenance import seeds
from .published import comparison, sources
from .render import fmt, render_page
from .summary import UTILITY_SETTING, classify_setting_rows

log = logging.getLogger(__name__)
PRDC_SPACES = ("raddino", "dinov2", "inception")  # the extractor of the original's Precision..Coverage, first present


@dataclass(frozen=True)
class Column:
    """A leaderboard value column: which metrics row it shows, and which way is better."""

    name: str
    stage: str
    metric: str
    extractors: tuple[str, ...] = ()  # the first present; () = any
    lower_is_better: bool = False


COLUMNS = (
    Column("FID", "fidelity", "FID", ("inception",), True),
    Column("FID (RadDino)", "fidelity", "FID", ("raddino",), True),
    Column("Inception Score", "fidelity", "IS"),
    Column("KID", "fidelity", "KID", ("inception",), True),
    Column("KID (RadDino)", "fidelity", "KID", ("raddino",), True),
    Column("Precision", "fidelity", "precision", PRDC_SPACES),
    Column("Recall", "fidelity", "recall", PRDC_SPACES),
    Column("Density", "fidelity", "density", PRDC_SPACES),
    Column("Coverage", "fidelity", "coverage", PRDC_SPACES),
    Column("Alignment_score", "align", "alignment"),
    Column("FRD", "fidelity", "FRD", (), True),
    Column("FD_DINOv2", "fidelity", "FID", ("dinov2",), True),
    Column("KD_DINOv2", "fidelity", "KID", ("dinov2",), True),
    Column("CMMD", "fidelity", "CMMD", ("clip",), True),
    Column("MiFID", "fidelity", "MiFID", ("inception",), True),
    Column("Vendi (RadDino)", "fidelity", "vendi", ("raddino",)),
    Column("Vendi real (RadDino)", "fidelity", "vendi_real", ("raddino",)),
    Column("Vendi per prompt (RadDino)", "fidelity", "vendi_per_prompt", ("raddino",)),
    Column("C_T", "fidelity", "C_T", ("inception",)),  # a z-score: below -3 flags data copying; not ranked by size
    Column("Avg. Re-ID Score", "privacy", "reid_mean", (), True),
    Column("Max. Re-ID Score", "privacy", "reid_max", (), True),
    Column("Count Re-ID > delta", "privacy", "reid_count_gt_delta", (), True),
    Column("AUROC (trained on synthetic)", "classify", "auc_macro"),
)
BY_NAME = {c.name: c for c in COLUMNS}
DEFAULT_RANK = ("FID (RadDino)", "FID", "Alignment_score", "AUROC (trained on synthetic)")
IDENTITY = ("Model", "Run ID", "Seed", "Rank", "Rank note")
CSV, CSV_CONDITIONAL, HTML = "leaderboard.csv", "leaderboard_conditional.csv", "leaderboard.html"
CSV_PUBLISHED = "leaderboard_published.csv"
PUBLISHED_COLUMNS = (
    "Model",
    "Run ID",
    "Published model",
    "Mark",
    "Comparable",
    "Table",
    "Metric",
    "Pathology",
    "Published",
    "Value",
    "CI low",
    "CI high",
    "Difference",
    "Published in CI",
    "Verdict",
)


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _value(metrics: pd.DataFrame, column: Column, subset: str) -> tuple | None:
    """(value, ci_low, ci_high) of one column for one subset (`all` or a label), or None."""
    rows = metrics[(metrics["stage"] == column.stage)]
    if column.stage == "classify":  # its subsets are settings; per-class values are metrics auc_<label>
        rows = classify_setting_rows(rows, UTILITY_SETTING)
        metric = column.metric if subset == "all" else f"auc_{subset}"
        rows = rows[rows["metric"] == metric]
    else:
        rows = rows[(rows["metric"] == column.metric) & (rows["subset"] == subset)]
    for extractor in column.extractors:
        chosen = rows[rows["extractor"] == extractor]
        if len(chosen):
            rows = chosen
            break
    else:
        if column.extractors:
            return None
    if rows.empty or not _finite(rows.iloc[0]["value"]):
        return None
    row = rows.iloc[0]
    return tuple(float(row[k]) if _finite(row[k]) else None for k in ("value", "ci_low", "ci_high"))


def _run_facts(run: Run) -> dict:
    """Seed, Extra Info and Caption Type of a run, from its manifests."""
    generate, fidelity = run.stage("generate"), run.stage("fidelity")
    found = seeds(generate.manifest.get("params", {})) if generate else {}
    seed = found.get("settings.seed", next(iter(found.values()), None))
    extra = (fidelity.manifest.get("params", {}).get("extra_info") if fidelity else None) or f"{run.model} {run.run_id}"
    caption = (fidelity.manifest.get("params", {}).get("caption_type") if fidelity else None) or ""
    prompts = generate.input_path("prompts") if generate else None
    if not caption and prompts is not None and prompts.is_file():
        caption = read_metadata(prompts).get("extra", {}).get("caption_column", "")
    return {"Model": run.model, "Run ID": run.run_id, "Seed": seed, "Extra Info": extra, "Caption Type": caption}


def _row(run: Run, metrics: pd.DataFrame, facts: dict, subset: str) -> dict:
    row = dict(facts)
    if subset != "all":
        row["Pathology"] = subset
    for column in COLUMNS:
        found = _value(metrics, column, subset)
        row[column.name] = found[0] if found else None
        row[f"{column.name} CI low"], row[f"{column.name} CI high"] = (found[1], found[2]) if found else (None, None)
    return row


def rank(rows: list[dict], column: Column) -> None:
    """Set Rank and Rank note of each row by the module's rule (the rows are one comparison group)."""
    sign = 1 if column.lower_is_better else -1
    valued = sorted((r for r in rows if _finite(r.get(column.name))), key=lambda r: sign * r[column.name])
    for r in rows:
        r["Rank"], r["Rank note"] = None, f"no {column.name}"
    if not valued:
        return

    def interval(r):
        low, high = r[f"{column.name} CI low"], r[f"{column.name} CI high"]
        return (low, high) if _finite(low) and _finite(high) else (r[column.name], r[column.name])

    best_low, best_high = interval(valued[0])
    tied = [r for r in valued if interval(r)[0] <= best_high and interval(r)[1] >= best_low]
    rest = [r for r in valued if all(r is not t for t in tied)]
    for r in tied:
        r["Rank"], r["Rank note"] = 1, "tied with best (CIs overlap)"
    valued[0]["Rank note"] = "best"
    for k, r in enumerate(rest, start=len(tied) + 1):
        r["Rank"], r["Rank note"] = k, ""


def _rank_column(rows: list[dict], requested: str | None) -> Column:
    if requested is not None:
        if requested not in BY_NAME:
            raise BadInputError(f"--rank-by {requested!r}: not a leaderboard column; use one of {', '.join(BY_NAME)}")
        return BY_NAME[requested]
    for name in DEFAULT_RANK:
        if any(_finite(r.get(name)) for r in rows):
            return BY_NAME[name]
    return BY_NAME[DEFAULT_RANK[0]]


def _frame(rows: list[dict], conditional: bool) -> pd.DataFrame:
    values = [c.name for c in COLUMNS]
    leading = list(ORIGINAL_LEADERBOARD_COLUMNS) + (["Pathology"] if conditional else []) + list(IDENTITY)
    added = [v for v in values if v not in ORIGINAL_LEADERBOARD_COLUMNS]
    intervals = [f"{v} CI {end}" for v in values for end in ("low", "high")]
    return pd.DataFrame(rows, columns=leading + added + intervals)


def _published_rows(run: Run) -> list[dict]:
    """The run's values beside CheXGenBench's published ones (none when it published nothing for the model)."""
    block = comparison(run)
    return [
        {
            "Model": run.model,
            "Run ID": run.run_id,
            "Published model": block["published_model"],
            "Mark": block["mark"] or "",
            "Comparable": block["comparable"],
            "Table": table["name"],
            "Metric": row["metric"],
            "Pathology": "" if row["subset"] == "all" else row["subset"],
            "Published": float(row["published"]),
            "Value": row["value"],
            "CI low": row["ci_low"],
            "CI high": row["ci_high"],
            "Difference": row["difference"],
            "Published in CI": row["in_ci"],
            "Verdict": row["verdict"],
        }
        for table in block["tables"]
        for row in table["rows"]
    ]


def collect(results: Path, rank_by: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Column]:
    """The overall and per-pathology leaderboards of every finished run under `results`, ranked, and the runs'
    values beside the published ones."""
    runs = find_runs(results)
    if not runs:
        raise BadInputError(
            f"{results}: no finished run with a metrics table (looked for <model>/<run_id>/<stage>/metrics.parquet "
            "next to _SUCCESS); run make bench first"
        )
    overall, conditional, published, unreadable = [], [], [], []
    for model, run_id in runs:
        try:
            run = load_run(results, model, run_id)
            metrics, facts = run.metrics(), _run_facts(run)
        except ChexbenchError as exc:
            unreadable.append(f"{model}/{run_id}: {exc.lines()[0]}")
            log.warning("leaderboard: left out run %s/%s: %s", model, run_id, exc.lines()[0])
            continue
        overall.append(_row(run, metrics, facts, "all"))
        published += _published_rows(run)
        labelled = set(metrics["subset"]) | {m.removeprefix("auc_") for m in metrics["metric"]}
        conditional += [_row(run, metrics, facts, label) for label in CHEXPERT_LABELS if label in labelled]
    if not overall:
        raise BadInputError(f"{results}: none of the {len(runs)} finished runs can be read; the first: {unreadable[0]}")
    column = _rank_column(overall, rank_by)
    rank(overall, column)
    for label in CHEXPERT_LABELS:
        rank([r for r in conditional if r["Pathology"] == label], column)
    conditional = [r for r in conditional if any(_finite(r[c.name]) for c in COLUMNS)]
    sign = 1 if column.lower_is_better else -1

    def order(r):  # ranked runs first, by rank, then by value: the best run leads
        ranked = r["Rank"] is not None
        return (not ranked, r["Rank"] if ranked else 0, sign * r[column.name] if ranked else 0, r["Model"], r["Run ID"])

    overall.sort(key=order)
    conditional.sort(key=lambda r: (CHEXPERT_LABELS.index(r["Pathology"]), order(r)))
    published_frame = pd.DataFrame(published, columns=list(PUBLISHED_COLUMNS)).astype({"Published in CI": object})
    return _frame(overall, False), _frame(conditional, True), published_frame, column


def _cells(frame: pd.DataFrame, conditional: bool) -> tuple[list[str], list[list[dict]]]:
    """Header and cells ({text, sort, ci}) of a page table: value columns that hold anything, with their CI."""
    shown = [c.name for c in COLUMNS if frame[c.name].notna().any()]
    header = (["Pathology"] if conditional else []) + ["Rank", "Model", "Run ID", "Seed", *shown, "Extra Info"]
    body = []
    for rec in frame.to_dict("records"):
        cells = []
        for name in header:
            value = rec[name]
            value = None if isinstance(value, float) and math.isnan(value) else value
            cell = {"text": fmt(value) if value is not None else "—", "sort": "" if value is None else value}
            if name in BY_NAME and value is not None:
                low, high = rec[f"{name} CI low"], rec[f"{name} CI high"]
                cell["ci"] = f"[{fmt(low)}, {fmt(high)}]" if _finite(low) and _finite(high) else ""
            if name == "Rank":
                cell["note"] = rec["Rank note"]
            cells.append(cell)
        body.append({"cells": cells, "tied": rec["Rank"] == 1})
    return header, body


def _published_cells(published: pd.DataFrame) -> list[dict]:
    """The published-comparison rows as the page shows them."""
    shown = []
    for rec in published.to_dict("records"):
        value, low, high = (None if not _finite(rec[k]) else rec[k] for k in ("Value", "CI low", "CI high"))
        ci = f"[{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""
        shown.append(
            rec
            | {
                "value_text": fmt(value),
                "value_sort": "" if value is None else value,
                "difference_sort": rec["Difference"] if _finite(rec["Difference"]) else "",
                "ci_text": ci,
                "difference_text": fmt(rec["Difference"] if _finite(rec["Difference"]) else None),
                "published_text": f"{rec['Published']:g}",  # as printed: at most 3 decimals, 6 digits
            }
        )
    return shown


def write_leaderboard(results: Path, out: Path, rank_by: str | None = None) -> list[Path]:
    """Write leaderboard.csv, leaderboard_conditional.csv and leaderboard.html into `out`."""
    overall, conditional, published, column = collect(results, rank_by)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / CSV, out / CSV_CONDITIONAL, out / CSV_PUBLISHED, out / HTML]
    write_text_atomic(paths[0], overall.to_csv(index=False))
    write_text_atomic(paths[1], conditional.to_csv(index=False))
    write_text_atomic(paths[2], published.to_csv(index=False))
    tables = [("overall", "Overall", *_cells(overall, False))]
    if len(conditional):
        tables.append(("conditional", "Per pathology", *_cells(conditional, True)))
    page = render_page(
        "leaderboard.html.j2",
        results=str(results),
        runs=len(overall),
        column=column,
        rule=__doc__.split("\n\n")[1],
        tables=tables,
        published=_published_cells(published),
        source=sources()["source"],
        protocols=[(t["title"], t["protocol"]) for t in sources()["tables"].values()],
    )
    write_text_atomic(paths[3], page)
    return paths
