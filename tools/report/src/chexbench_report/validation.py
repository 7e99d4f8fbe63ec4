"""The validation panel (`make validate`'s run): one entry per judged relation, failures first, each with its verdict,
reason and the series it was judged on (value and CI per ladder level or control), for one small chart each."""

from __future__ import annotations

import pandas as pd

from .collect import Run

STAGE = "validate"
VERDICTS = ("fail", "underpowered", "stand-in", "pass")  # the panel's order: what needs a look first


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def validation_panel(run: Run) -> dict | None:
    """The relations of the run's finished validate stage (validation.csv), failures first; None without it."""
    stage = run.finished(STAGE)
    if stage is None:
        return None
    path = stage.output("validation", "validation.csv")
    if not path.is_file():
        return {"relations": [], "counts": {}, "notes": [f"{path} was not found"]}
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    table["verdict"] = table["verdict"].astype(str)
    order = {v: i for i, v in enumerate(VERDICTS)}
    first_seen = {r: i for i, r in enumerate(dict.fromkeys(table["relation"]))}
    relations = []
    for name, rows in sorted(
        table.groupby("relation", sort=False),
        key=lambda item: (order.get(item[1]["verdict"].iloc[0], len(order)), first_seen[item[0]]),
    ):
        rows = rows.sort_values("level", kind="stable")
        head = rows.iloc[0]
        relations.append(
            {
                "relation": name,
                "axis": head["axis"],
                "metric": head["metric"],
                "extractor": "" if pd.isna(head["extractor"]) else head["extractor"],
                "verdict": head["verdict"],
                "reason": head["reason"],
                "expected": head["expected"],
                "weights": "" if pd.isna(head["weights"]) else head["weights"],
                "points": [
                    {
                        "label": str(r["level_label"]),
                        "control": str(r["control"]),
                        "value": _number(r["value"]),
                        "ci_low": _number(r["ci_low"]),
                        "ci_high": _number(r["ci_high"]),
                    }
                    for r in rows.to_dict("records")
                ],
            }
        )
    counts = {v: sum(r["verdict"] == v for r in relations) for v in VERDICTS}
    return {"relations": relations, "counts": counts, "notes": []}
