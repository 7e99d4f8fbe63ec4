"""Long-format rows -> the `metrics` table and a leaderboard CSV with the original CheXGenBench column names.

Each run writes its own leaderboard files (never appending to a shared file); `collect` merges finished runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError
from chexbench_common.rundir import SUCCESS, is_finished
from chexbench_schema import ORIGINAL_LEADERBOARD_COLUMNS

from .metric_registry import leaderboard_column
from .registry import Row

LEADERBOARD = "leaderboard.csv"
LEADERBOARD_CONDITIONAL = "leaderboard_conditional.csv"
STAGE = "fidelity"


def leaderboard_frame(
    rows: list[Row],
    *,
    model: str,
    run_id: str,
    extra_info: str,
    conditional: bool,
    prdc_primary: str | None,
    caption_type: str = "",
) -> pd.DataFrame:
    """One leaderboard row per subset: the original columns first, then Pathology, then chexbench's additions."""
    records: dict[str, dict] = {}
    first = {"Extra Info": extra_info, "Caption Type": caption_type, "Model": model, "Run ID": run_id}
    for row in rows:
        rec = records.setdefault(row.subset, dict(first))
        column = leaderboard_column(row, prdc_primary)
        if column is None:
            continue
        rec[column] = np.nan if row.value is None else row.value
        if row.ci_low is not None:
            rec[f"{column} CI low"], rec[f"{column} CI high"] = row.ci_low, row.ci_high
        if row.metric == "FID" and "N Real" not in rec:
            rec["N Real"], rec["N Synthetic"] = row.n_real, row.n_synth
        if row.note:
            rec.setdefault("_notes", []).append(f"{column}: {row.note}")
    for rec in records.values():
        rec["Notes"] = " | ".join(rec.pop("_notes", []))
    frame = pd.DataFrame(list(records.values()))
    if conditional:
        frame.insert(0, "Pathology", list(records))
    leading = list(ORIGINAL_LEADERBOARD_COLUMNS) + (["Pathology"] if conditional else [])
    for col in leading:
        if col not in frame:
            frame[col] = np.nan
    rest = [c for c in frame.columns if c not in leading]
    return frame[leading + rest]


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def collect(results: Path, out: Path, conditional: bool) -> tuple[Path, int]:
    """Merge the leaderboard files of every finished fidelity run under `results` into `out`."""
    name = LEADERBOARD_CONDITIONAL if conditional else LEADERBOARD
    files = sorted(p for p in results.glob(f"*/*/{STAGE}/{name}") if is_finished(p.parent))
    if not files:
        raise BadInputError(
            f"{results}: no finished fidelity run has a {name} (looked for "
            f"<model>/<run_id>/{STAGE}/{name} next to {SUCCESS})"
        )
    frames = [pd.read_csv(p) for p in files]
    merged = pd.concat(frames, ignore_index=True, sort=False)
    leading = [c for c in frames[0].columns if c in ORIGINAL_LEADERBOARD_COLUMNS or c == "Pathology"]
    merged = merged[leading + [c for c in merged.columns if c not in leading]]
    return write_csv(merged, out), len(files)
