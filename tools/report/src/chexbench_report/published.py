"""CheXGenBench's published values beside a run's: which published model a run compares with, and per value the
difference (run - published) and whether the published value lies in the run's confidence interval.

The tables are package data (published/: three CSVs as printed, sources.json with their source, the protocol
differences and the aliases), so the report's own image carries them. A run is compared when its model is a model of
the tables (the registry ids), or an alias of one (SynthCheX-75K: Sana's released images, scored after
`chexbench-generate import`); the embedded demo is compared with the generator it runs and marked not comparable.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pandas as pd
from chexbench_schema import CHEXPERT_LABELS

from .collect import Run

DEMO = "demo"


@dataclass(frozen=True)
class Quantity:
    """A published column and the run's metrics row it corresponds to."""

    table: str
    column: str
    label: str
    stage: str
    metric: str
    extractor: str | None


QUANTITIES = (
    Quantity("fidelity", "fid_raddino", "FID (RadDino)", "fidelity", "FID", "raddino"),
    Quantity("fidelity", "kid_raddino", "KID (RadDino)", "fidelity", "KID", "raddino"),
    Quantity("fidelity", "precision", "Precision (RadDino)", "fidelity", "precision", "raddino"),
    Quantity("fidelity", "recall", "Recall (RadDino)", "fidelity", "recall", "raddino"),
    Quantity("fidelity", "density", "Density (RadDino)", "fidelity", "density", "raddino"),
    Quantity("fidelity", "coverage", "Coverage (RadDino)", "fidelity", "coverage", "raddino"),
    Quantity("fidelity", "alignment_biovil_t", "Alignment (BioViL-T)", "align", "alignment", None),
    Quantity("privacy", "avg_reid", "Avg. Re-ID Score", "privacy", "reid_mean", "reid"),
    Quantity("privacy", "max_reid", "Max. Re-ID Score", "privacy", "reid_max", "reid"),
    Quantity(
        "privacy", "avg_latent_distance", "Avg. Latent Distance (RadDino)", "privacy", "latent_distance_mean", "raddino"
    ),
    Quantity("privacy", "avg_pixel_distance", "Avg. Pixel Distance", "privacy", "pixel_distance_mean", "pixel"),
    Quantity("privacy", "count_reid_gt_delta", "Count Re-ID > delta", "privacy", "reid_count_gt_delta", "reid"),
)
# per pathology: every label column of the conditional table is FID on RAD-DINO of that label's group
CONDITIONAL = Quantity("conditional", "", "FID (RadDino)", "fidelity", "FID", "raddino")
TABLES = ("fidelity", "conditional", "privacy")


@cache
def sources() -> dict:
    """sources.json: the tables' source, protocol lines and caveats, the aliases and the demo's mark."""
    return json.loads(_data("sources.json").read_text())


def _data(name: str):
    return resources.files("chexbench_report") / "published" / name


def digest() -> str:
    """sha256 over the package data (sources.json and the tables): a report made with other published values is
    made again."""
    names = ["sources.json", *(sources()["tables"][name]["file"] for name in TABLES)]
    return hashlib.sha256(b"".join(_data(name).read_bytes() for name in names)).hexdigest()


@cache
def table(name: str) -> pd.DataFrame:
    """One published table as printed (strings), indexed by model (registry id)."""
    with _data(sources()["tables"][name]["file"]).open() as handle:
        return pd.read_csv(handle, dtype=str).set_index("model")


def models() -> list[str]:
    return list(dict.fromkeys(m for name in TABLES for m in table(name).index))


@dataclass(frozen=True)
class Match:
    """The published model a run is compared with; `mark` and `why` say when it is not a like-for-like comparison
    (`comparable` False: the values are shown but not judged)."""

    model: str
    comparable: bool = True
    mark: str | None = None
    why: str | None = None


def match(run: Run) -> Match | None:
    """The published model of a run: its own model, an alias's model, or for the demo its generator; else None."""
    known = models()
    if run.model in known:
        return Match(run.model)
    aliases = {name.casefold(): alias for name, alias in sources()["aliases"].items()}
    alias = aliases.get(run.model.casefold())
    if alias is not None:
        return Match(alias["model"], True, alias["mark"], alias["why"])
    if run.model == DEMO:
        generate = run.stage("generate")
        generator = (generate.manifest.get("params", {}) if generate else {}).get("model")
        if generator in known:
            return Match(generator, False, sources()["demo"]["mark"], sources()["demo"]["why"])
    return None


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _number(row: dict, key: str) -> float | None:
    return float(row[key]) if _finite(row.get(key)) else None


def _run_row(metrics: pd.DataFrame, q: Quantity, subset: str) -> dict | None:
    """The run's metrics row of a quantity (the first, as the leaderboard takes it), or None when it has none."""
    rows = metrics[(metrics["stage"] == q.stage) & (metrics["metric"] == q.metric) & (metrics["subset"] == subset)]
    if q.extractor is not None:
        rows = rows[rows["extractor"] == q.extractor]
    return None if rows.empty else rows.iloc[0].to_dict()


def compare_value(published: float, run_row: dict | None, judged: bool = True) -> dict:
    """The run's value next to the published one: the difference (run - published) and whether the published value
    lies in the run's CI, bounds included (None without a run value or CI, or when `judged` is False)."""
    value = None if run_row is None else _number(run_row, "value")
    low, high = (None, None) if run_row is None else (_number(run_row, "ci_low"), _number(run_row, "ci_high"))
    in_ci = None if value is None or low is None or high is None or not judged else low <= published <= high
    if run_row is None:
        verdict = "not in this run"
    elif value is None:  # the stage wrote the row without a value (e.g. an instrument that cannot discriminate)
        verdict = "no value in this run (its note is under All metrics)"
    else:
        verdict = {True: "in the run's CI", False: "outside the run's CI", None: "no CI in this run"}[in_ci]
    counts = {
        k: None if run_row is None or _number(run_row, k) is None else int(run_row[k]) for k in ("n_real", "n_synth")
    }
    return {
        "published": published,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "difference": None if value is None else value - published,
        "in_ci": in_ci,
        "verdict": verdict,
        **counts,
    }


def _pairs(name: str, columns) -> list[tuple[Quantity, str, str]]:
    """(quantity, subset, published column) of one table."""
    if name == "conditional":
        return [(CONDITIONAL, label, label) for label in CHEXPERT_LABELS if label in columns]
    return [(q, "all", q.column) for q in QUANTITIES if q.table == name]


def table_rows(metrics: pd.DataFrame, model: str, name: str) -> list[dict]:
    """Every published value of one table for `model` beside the run's (empty when the table lacks the model)."""
    published = table(name)
    if model not in published.index:
        return []
    rows = []
    for q, subset, column in _pairs(name, published.columns):
        text = published.loc[model, column]
        caveat = sources()["caveats"].get(column, {}) if name != "conditional" else {}
        judged = caveat.get("comparable", True)
        row = compare_value(float(text), _run_row(metrics, q, subset), judged)
        if not judged and row["value"] is not None:
            row["verdict"] = caveat["why"]
        caveat_note = caveat.get("why") if judged else None
        rows.append(
            {"table": name, "metric": q.label, "subset": subset, "published_text": text, **row, "caveat": caveat_note}
        )
    return rows


def _counts(rows: list[dict], name: str) -> str:
    """What the run's values of one table rest on (the first row with counts)."""
    counted = next((r for r in rows if r["n_real"] is not None), None)
    if counted is None or name == "conditional":  # per label: the counts are in each row
        return ""
    if name == "privacy":
        return f" This run: {counted['n_real']} TRAIN prompts, {counted['n_synth']} generations."
    return f" This run: {counted['n_real']} real and {counted['n_synth']} synthetic images."


def comparison(run: Run) -> dict:
    """The report's published-comparison block: the source, the match, and per table its rows and protocol line."""
    src = sources()
    found = match(run)
    block = {"source": src["source"], "model": run.model, "published_model": None, "comparable": None}
    if found is None:
        known = ", ".join(models())
        note = f"CheXGenBench published no values for {run.model!r} (the tables hold {known}; aliases: "
        block |= {"mark": None, "why": None, "tables": [], "note": note + f"{', '.join(src['aliases'])})."}
        return block
    block |= {"published_model": found.model, "comparable": found.comparable, "mark": found.mark, "why": found.why}
    block |= {"note": None, "tables": []}
    metrics = run.metrics()
    for name in TABLES:
        rows = table_rows(metrics, found.model, name)
        if rows:
            meta = src["tables"][name]
            rows = rows if any(r["value"] is not None for r in rows) else []  # the stage has not run: one line
            block["tables"].append(
                {
                    "name": name,
                    "title": meta["title"],
                    "image": meta["image"],
                    "note": meta.get("note"),
                    "protocol": meta["protocol"] + "." + (_counts(rows, name) if rows else ""),
                    "rows": rows,
                }
            )
    return block
