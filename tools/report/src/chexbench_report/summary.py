"""What the metrics tables say: stage statuses, the headline rows with their CIs, every row of every stage, and the
per-pathology series that become charts. Any stage's metrics appear (generic), a few stages get a chosen selection."""

from __future__ import annotations

import math

import pandas as pd
from chexbench_schema import CHEXPERT_LABELS

from .collect import Run, Stage

COLUMNS = ("stage", "metric", "subset", "extractor", "value", "ci_low", "ci_high", "n_real", "n_synth", "note")
# the headline selection of stages whose metrics tables hold many diagnostic rows; others show their `all` rows
PRIVACY_HEADLINE = (
    "reid_mean",
    "reid_max",
    "reid_count_gt_delta",
    "flag_rate_any",
    "control_sensitivity_any",
    "control_detection_limit",
    "holdout_specificity_any",
    "dcr_median_ratio",
    "patients_flagged_rate",
)
CLASSIFY_HEADLINE = ("auc_macro",)  # per setting; the classification section adds the others
# per setting (p10, p50, p100, zeroshot): the original's overview metrics; other CheXbert variants are in All metrics
LLAVA_HEADLINE = (
    "BLEU-1",
    "BLEU-4",
    "ROUGE-L",
    "Micro-F1-14",
    "Macro-F1-14",
    "Micro-F1-5",
    "Macro-F1-5",
    "F1-RadGraph",
)
CLASSIFY_METRICS = ("auc_macro", "auprc_macro", "f1_macro_05")
# per-pathology charts: the metrics charted for these stages; any other stage gets every metric with label rows
CHARTED = {
    "fidelity": ("FID", "KID", "CMMD", "vendi", "vendi_per_prompt", "MiFID", "C_T", "FRD"),
    "align": ("alignment",),
}
# a metric drawn with another metric's value per label beside each bar (same stage and extractor): its reference
REFERENCES = {("fidelity", "vendi"): ("vendi_real", "real set (the ceiling)")}
# the names the leaderboard and dgm-eval give a metric on one extractor's features
ALIASES = {("FID", "dinov2"): "FD_DINOv2", ("KID", "dinov2"): "KD_DINOv2"}
MAX_GENERIC_CHARTS = 6  # per stage without a chosen selection
# the classify setting charted with the other per-pathology charts: train on synthetic, test on real
UTILITY_SETTING = "all_synthetic"
PER_CLASS_AUC = [f"auc_{label}" for label in CHEXPERT_LABELS]


def _clean(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def records(frame: pd.DataFrame) -> list[dict]:
    """Metrics rows as plain dicts (None for missing values), in COLUMNS order."""
    return [{c: _clean(row.get(c)) for c in COLUMNS} for row in frame.to_dict("records")]


def stage_statuses(run: Run) -> list[dict]:
    return [
        {
            "stage": s.name,
            "status": s.status,
            "reason": s.reason,
            "started": s.manifest.get("started"),
            "ended": s.manifest.get("ended"),
            "metrics_rows": 0 if s.metrics is None else len(s.metrics),
        }
        for s in run.stages
    ]


def classify_settings(metrics: pd.DataFrame) -> list[str]:
    """The classify settings in the order they appear (subsets `<setting>` and `<setting>/seed<k>`)."""
    return list(dict.fromkeys(s.split("/")[0] for s in metrics["subset"]))


def classify_setting_rows(metrics: pd.DataFrame, setting: str) -> pd.DataFrame:
    """One setting's rows with CIs: its seed's own rows when it ran with one seed, else the mean over seeds (its CI
    over patients and seeds; the note gives the spread)."""
    seeds = sorted(s for s in metrics["subset"].unique() if s.startswith(f"{setting}/seed"))
    if len(seeds) == 1:
        return metrics[metrics["subset"] == seeds[0]].assign(subset=setting)
    return metrics[metrics["subset"] == setting]


def _setting_order(setting: str) -> tuple[int, str]:
    """llava-report settings: the fractions in numeric order (p10 < p50 < p100), then the others (zeroshot)."""
    digits = setting[1:]
    return (int(digits), "") if setting.startswith("p") and digits.isdigit() else (1000, setting)


def headline(stage: Stage) -> list[dict]:
    m = stage.metrics
    if m is None or m.empty:
        return []
    if stage.name == "privacy":
        rows = m[m["metric"].isin(PRIVACY_HEADLINE)]
        # the verdicts over every space (extractor null); each space's own rows are in the privacy section
        verdicts = rows["metric"].str.endswith("_any") | (rows["metric"] == "control_detection_limit")
        rows = rows[~verdicts | rows["extractor"].isna()]
        rows = rows.assign(order=rows["metric"].map(PRIVACY_HEADLINE.index)).sort_values("order", kind="stable")
    elif stage.name == "classify":
        parts = [classify_setting_rows(m, s) for s in classify_settings(m)]
        rows = pd.concat(parts) if parts else m.iloc[:0]
        rows = rows[rows["metric"].isin(CLASSIFY_HEADLINE)]
    elif stage.name == "llava-report":  # per setting; with several training seeds their mean (seeds in All metrics)
        rows = m[m["metric"].isin(LLAVA_HEADLINE) & ~m["subset"].str.contains("/seed", regex=False)]
        settings = sorted(rows["subset"].unique(), key=_setting_order)
        rows = rows.assign(
            order=rows["subset"].map(settings.index) * len(LLAVA_HEADLINE) + rows["metric"].map(LLAVA_HEADLINE.index)
        ).sort_values("order", kind="stable")
    else:
        rows = m[(m["subset"] == "all") & ~m["metric"].str.endswith("_std")]
        if rows.empty:  # a stage that writes only per-group rows still shows something
            rows = m.head(20)
    return records(rows)


def _series(rows: pd.DataFrame, label_of) -> list[dict]:
    points = {}
    for row in records(rows):
        label = label_of(row)
        if label in CHEXPERT_LABELS:
            points[label] = {"label": label, **{k: row[k] for k in ("value", "ci_low", "ci_high", "n_real", "n_synth")}}
    return [points[label] for label in CHEXPERT_LABELS if label in points]


def _chart(stage: str, metric: str, extractor, points: list[dict], title: str, empty_note=None, reference=None) -> dict:
    """A per-label bar chart: `empty_note` says why no label has a value, `reference` names the marker each point's
    `reference` value draws beside its bar."""
    return {
        "stage": stage,
        "metric": metric,
        "extractor": extractor,
        "title": title,
        "points": points,
        "empty_note": empty_note,
        "reference": reference,
    }


def _title(stage: str, metric: str, extractor) -> str:
    alias = ALIASES.get((metric, extractor))
    if alias:
        return f"{stage}: {alias} ({metric} on {extractor})"
    return f"{stage}: {metric}" + (f" ({extractor})" if extractor else "")


def _with_reference(points: list[dict], rows: pd.DataFrame) -> list[dict]:
    """Each point with the reference metric's value of its label (None where that has none)."""
    reference = {p["label"]: p["value"] for p in _series(rows, lambda r: r["subset"])}
    return [p | {"reference": reference.get(p["label"])} for p in points]


def _empty_note(rows: pd.DataFrame) -> str | None:
    """Why a chart has no value for any label: the note of its first row (None when some label has a value)."""
    if rows["value"].notna().any():
        return None
    notes = [n for n in rows["note"] if isinstance(n, str) and n]
    return notes[0] if notes else "no value"


def pathology_series(run: Run) -> list[dict]:
    """Per-label series ({stage, metric, extractor, title, points}) of every finished stage that has them."""
    charts = []
    for stage in run.stages:
        m = stage.metrics
        if not stage.finished or m is None or m.empty:
            continue
        if stage.name == "classify":
            settings = classify_settings(m)
            charts += classify_auroc_series(m, [UTILITY_SETTING] if UTILITY_SETTING in settings else settings)
            continue
        labelled = m[m["subset"].isin(CHEXPERT_LABELS)]
        wanted = CHARTED.get(stage.name)
        keys = labelled[["metric", "extractor"]].drop_duplicates().itertuples(index=False)
        keys = [(metric, _clean(extractor)) for metric, extractor in keys if wanted is None or metric in wanted]
        if wanted is not None:
            keys.sort(key=lambda k: (wanted.index(k[0]), str(k[1])))
        else:
            keys = keys[:MAX_GENERIC_CHARTS]
        for metric, extractor in keys:
            same_extractor = labelled["extractor"].fillna("") == (extractor or "")
            rows = labelled[(labelled["metric"] == metric) & same_extractor]
            points = _series(rows, lambda r: r["subset"])
            extra = {"empty_note": _empty_note(rows[rows["subset"].isin([p["label"] for p in points])])}
            reference = REFERENCES.get((stage.name, metric))
            if reference is not None:
                points = _with_reference(points, labelled[(labelled["metric"] == reference[0]) & same_extractor])
                extra["reference"] = reference[1]
            charts.append(_chart(stage.name, metric, extractor, points, _title(stage.name, metric, extractor), **extra))
    return [c for c in charts if c["points"]]


def classify_auroc_series(metrics: pd.DataFrame, settings: list[str] | None = None) -> list[dict]:
    """Per-class AUROC (metrics `auc_<label>`) of each classify setting with its CI: the setting's rows, or its first
    seed's where a table of several seeds holds no per-class mean over seeds."""
    charts = []
    for setting in settings or classify_settings(metrics):
        rows, title = classify_setting_rows(metrics, setting), f"classify: AUROC per class, trained {setting}"
        if not rows["metric"].isin(PER_CLASS_AUC).any():
            first = sorted(s for s in metrics["subset"].unique() if s.startswith(f"{setting}/seed"))[:1]
            rows = metrics[metrics["subset"].isin(first)]
            title += f" ({first[0].split('/')[1]} of several)" if first else ""
        points = _series(rows[rows["metric"].isin(PER_CLASS_AUC)], lambda r: r["metric"].removeprefix("auc_"))
        charts.append(_chart("classify", "AUROC", None, points, title))
    return [c for c in charts if c["points"]]
