"""Compare two align outputs (two engines, two environments, or a reference): per-image scores and the metrics table.

A NaN never passes a tolerance: a per-image score must be finite on both sides, and a metric may be empty (None/NaN)
only where it is empty on both sides (a group without images, an interval from fewer than two prompts).

    python align_compare.py RUN_A/align RUN_B/align [--tolerance 1e-5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

TOLERANCE = 1e-5  # cosine units: float32 forward passes of two implementations or builds of the same network
KEYS = ["set", "image_id", "prompt_id"]
METRIC_KEYS = ["metric", "subset"]
METRIC_VALUES = ["value", "ci_low", "ci_high"]
METRIC_COUNTS = ["n_real", "n_synth"]


def max_abs_diff(a, b, *, allow_nan: bool) -> float:
    """max |a - b| over paired values; inf where a value is NaN on one side only, or anywhere unless allow_nan
    (then positions NaN on both sides are left out)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"{a.shape} values against {b.shape}")
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a != nan_b).any() or (nan_a.any() and not allow_nan):
        return float("inf")
    both = ~nan_a
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def score_diff(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Per-image scores (scores.csv) of the same pairs in the same order; every score must be finite."""
    if a[KEYS].astype(str).values.tolist() != b[KEYS].astype(str).values.tolist():
        raise ValueError("the two score tables do not list the same (set, image, prompt) pairs in the same order")
    return max_abs_diff(a["score"], b["score"], allow_nan=False)


def metric_diff(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """The metrics tables: the same (metric, subset) rows with the same counts; values and intervals within
    tolerance, empty only where both are."""
    a, b = a.set_index(METRIC_KEYS).sort_index(), b.set_index(METRIC_KEYS).sort_index()
    if a.index.tolist() != b.index.tolist():
        raise ValueError(f"the metrics tables have different rows: {sorted(set(a.index) ^ set(b.index))}")
    for column in METRIC_COUNTS:
        if not a[column].astype("Float64").equals(b[column].astype("Float64")):
            raise ValueError(f"the metrics tables count different images ({column})")
    return max(max_abs_diff(a[c].to_numpy(float), b[c].to_numpy(float), allow_nan=True) for c in METRIC_VALUES)


def compare_runs(a: Path, b: Path, tolerance: float = TOLERANCE) -> tuple[bool, str]:
    """Two align folders: (equal within tolerance, a one-line account)."""
    scores = score_diff(pd.read_csv(a / "scores.csv"), pd.read_csv(b / "scores.csv"))
    metrics = metric_diff(pd.read_parquet(a / "metrics.parquet"), pd.read_parquet(b / "metrics.parquet"))
    weights = [json.loads((d / "manifest.json").read_text()).get("weights", {}) for d in (a, b)]
    same = "the same" if weights[0] == weights[1] else "DIFFERENT"
    line = (
        f"{a} vs {b}: per-image scores max |diff| {scores:.3g}, metrics (values and CIs) max |diff| {metrics:.3g} "
        f"(tolerance {tolerance:g}); weights' sha256 {same}"
    )
    return scores <= tolerance and metrics <= tolerance, line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = parser.parse_args(argv)
    ok, line = compare_runs(args.a, args.b, args.tolerance)
    print(("equal: " if ok else "NOT EQUAL: ") + line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
