"""The picture panels: sample grids per pathology, the privacy evidence and the classification results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from chexbench_common.paths import resolve_under
from chexbench_schema import CHEXPERT_LABELS

from .collect import Run
from .sources import Pictures, synthetic_files, table_root
from .summary import CLASSIFY_METRICS, classify_auroc_series, classify_setting_rows, classify_settings, records

SAMPLES_PER_LABEL = 4
PAIRS_SHOWN = 6
CAPTION = 160  # characters of a prompt shown under its image


def _caption(text) -> str:
    text = "" if text is None or (isinstance(text, float) and pd.isna(text)) else str(text)
    return text if len(text) <= CAPTION else text[: CAPTION - 1] + "…"


def sample_grid(pictures: Pictures, n: int = SAMPLES_PER_LABEL) -> list[dict]:
    """Per CheXpert label with positives: up to n synthetic images of prompts with that label, next to up to n real
    images with the label (the shown prompts' own real images first)."""
    rows = []
    for label in CHEXPERT_LABELS:
        synth = pictures.synth[pictures.synth[label] == 1] if label in pictures.synth else pictures.synth.iloc[:0]
        synth = synth.sort_values("image_id").head(n)
        real = pictures.real
        real = real[(real[label] == 1) & real["file"].notna()] if label in real else real.iloc[:0]
        real = real.assign(shown=real["prompt_id"].isin(synth["prompt_id"])).sort_values(
            ["shown", "prompt_id"], ascending=[False, True]
        )
        if synth.empty and real.empty:
            continue
        rows.append(
            {
                "label": label,
                "synthetic": [
                    {"id": r["image_id"], "caption": _caption(r.get("prompt")), "file": str(r["file"])}
                    for r in synth.to_dict("records")
                ],
                "real": [
                    {"id": r["prompt_id"], "caption": _caption(r["prompt"]), "file": str(r["file"])}
                    for r in real.head(n).to_dict("records")
                ],
            }
        )
    return rows


def _metric_rows(metrics: pd.DataFrame, prefixes: tuple[str, ...]) -> list[dict]:
    return records(metrics[metrics["metric"].str.startswith(prefixes)])


def privacy_panel(run: Run, n: int = PAIRS_SHOWN) -> dict | None:
    """The top flagged pairs (synthetic next to its nearest training image, with the scores), the positive-control
    and holdout checks, and the thresholds; None when privacy has not finished."""
    stage = run.finished("privacy")
    if stage is None:
        return None
    notes = []
    pairs_csv = stage.output("flagged_pairs", "flagged_pairs.csv")
    pairs = pd.read_csv(pairs_csv).head(n) if pairs_csv.is_file() else pd.DataFrame()
    synth_table = stage.input_path("images")
    real_root = stage.manifest.get("params", {}).get("real_root")
    synth_files = {}
    if synth_table is not None and synth_table.is_file():
        table = synthetic_files(synth_table, table_root(synth_table))
        synth_files = dict(zip(table["image_id"], table["file"], strict=True))
    else:
        notes.append(f"the privacy chain's images table {synth_table} was not found: pairs shown without pictures")
    shown = []
    for i, pair in enumerate(pairs.to_dict("records")):
        train = None
        if real_root and isinstance(pair.get("train_image_path"), str):
            train = resolve_under(real_root, pair["train_image_path"], where=f"{pairs_csv} row {i + 1}")
        synth = synth_files.get(pair["image_id"])
        shown.append(
            {
                **{k: (None if pd.isna(v) else v) for k, v in pair.items()},
                "file": str(synth) if synth is not None and synth.is_file() else None,
                "train_file": str(train) if train is not None and train.is_file() else None,
            }
        )
    thresholds_path = stage.output("thresholds", "thresholds.json")
    thresholds = json.loads(thresholds_path.read_text()) if thresholds_path.is_file() else {}
    sheet = stage.output("contact_sheet", "flagged_pairs.png")
    spaces_path = stage.output("spaces", "spaces.json")
    return {
        "pairs": shown,
        "spaces": json.loads(spaces_path.read_text()) if spaces_path.is_file() else {},
        "ladder": privacy_ladder(stage.metrics),
        "warnings": stage.manifest.get("warnings", []),
        "controls": _metric_rows(stage.metrics, ("holdout_specificity_",)),
        "flag_rates": _metric_rows(stage.metrics, ("flag_rate_",)),
        "thresholds": thresholds,
        "sheet": str(sheet) if sheet.is_file() else None,
        "notes": notes,
    }


def privacy_ladder(metrics: pd.DataFrame | None) -> dict:
    """The positive-control ladder: per strength (rows) and space (columns, "all spaces" = the union of every
    informative rule) the share of copies caught and of copies whose nearest training image is their own source,
    with their CIs; and each space's detection limit."""
    if metrics is None:
        return {"spaces": [], "rows": [], "limits": []}
    caught = metrics[metrics["metric"] == "control_sensitivity_any"]
    found = metrics[metrics["metric"] == "control_source_rank1"]
    limits = metrics[metrics["metric"] == "control_detection_limit"]
    spaces = list(dict.fromkeys(caught["extractor"].where(caught["extractor"].notna(), None)))

    def cell(frame: pd.DataFrame, space, strength: str) -> dict | None:
        rows = frame[
            (frame["subset"] == strength)
            & (frame["extractor"].isna() if space is None else frame["extractor"] == space)
        ]
        return records(rows)[0] if len(rows) else None

    strengths = list(dict.fromkeys(caught["subset"]))
    return {
        "spaces": [space or "all spaces" for space in spaces],
        "rows": [
            {
                "strength": strength,
                "cells": [{"caught": cell(caught, sp, strength), "rank1": cell(found, sp, strength)} for sp in spaces],
            }
            for strength in strengths
        ],
        "limits": [cell(limits, sp, "all") for sp in spaces],
    }


def classification_panel(run: Run) -> dict | None:
    """The ROC figure classify drew, each setting's headline metrics, the checkpoint each setting and seed was tested
    with (selection rule and chosen epoch) and its per-class AUROC."""
    stage = run.finished("classify")
    if stage is None or stage.metrics is None:
        return None
    m = stage.metrics
    settings = []
    for setting in classify_settings(m):
        rows = classify_setting_rows(m, setting)
        settings.append({"setting": setting, "rows": records(rows[rows["metric"].isin(CLASSIFY_METRICS)])})
    roc: Path = stage.output("roc", "roc.png")
    return {
        "roc": str(roc) if roc.is_file() else None,
        "settings": settings,
        "selection": records(m[m["metric"] == "selected_epoch"]),
        "auroc": classify_auroc_series(m),
    }
