"""Compare two stage output folders (the RUNNER=local run and the container run of the same inputs).

Usage: python tests/containers/compare_results.py REFERENCE_DIR CANDIDATE_DIR
fidelity (a folder with metrics.parquet): metrics.parquet, leaderboard.csv and leaderboard_conditional.csv have the
same rows and columns, text equal, numbers equal to float32 tolerance (rtol 1e-6: KID's Gram products and the P/R/D/C
distance tiles are float32 GEMMs, which another Python and numpy build may block differently; a CI run measured
2.6e-8 on KID), NaN where NaN; the columns that name the run (run id, extra info) are expected to differ and are left
out.
embed (a folder of embeddings tables): the same tables, rows (by image_id) and text columns, vectors equal to
rtol 1e-5 / atol 1e-6 (float32 features from the same torch version on another Python build).
Exit 1 with one line per difference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

RUN_COLUMNS = {"run_id", "Run ID", "Extra Info"}
RTOL, ATOL = 1e-6, 1e-9
VEC_RTOL, VEC_ATOL = 1e-5, 1e-6


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return frame.drop(columns=[c for c in frame.columns if c in RUN_COLUMNS])


def compare(ref: Path, cand: Path) -> list[str]:
    problems = []
    a, b = _read(ref), _read(cand)
    if list(a.columns) != list(b.columns):
        return [f"{cand.name}: columns {list(b.columns)} != {list(a.columns)}"]
    if len(a) != len(b):
        return [f"{cand.name}: {len(b)} rows != {len(a)}"]
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            bad = ~np.isclose(xv, yv, rtol=RTOL, atol=ATOL, equal_nan=True)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                problems.append(f"{cand.name}: {col} row {i}: {yv[i]!r} != {xv[i]!r} ({int(bad.sum())} rows differ)")
        elif not x.fillna("<NA>").astype(str).equals(y.fillna("<NA>").astype(str)):
            problems.append(f"{cand.name}: column {col} differs")
    return problems


# Tables RUNNER=local writes that the stage images cannot yet (pyradiomics is not in the embed image: Makefile).
LOCAL_ONLY = ("real-radiomics.parquet", "synthetic-radiomics.parquet")


def compare_embeddings(ref: Path, cand: Path) -> tuple[list[str], str]:
    names = sorted(p.name for p in ref.glob("*.parquet") if p.name not in LOCAL_ONLY)
    if not names:
        return [f"{ref} has no embeddings tables"], ""
    problems, worst = [], 0.0
    for name in names:
        if not (cand / name).is_file():
            problems.append(f"{cand / name} is missing")
            continue
        a = pd.read_parquet(ref / name).sort_values("image_id", ignore_index=True)
        b = pd.read_parquet(cand / name).sort_values("image_id", ignore_index=True)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            problems.append(f"{name}: columns or row count differ")
            continue
        for col in a.columns:
            if col == "vector":
                x, y = np.stack(a[col].to_numpy()), np.stack(b[col].to_numpy())
                if x.shape != y.shape or not np.allclose(x, y, rtol=VEC_RTOL, atol=VEC_ATOL):
                    problems.append(f"{name}: vectors differ (shapes {x.shape} {y.shape})")
                elif x.size:
                    worst = max(worst, float(np.abs(x - y).max()))
            elif not a[col].fillna("<NA>").astype(str).equals(b[col].fillna("<NA>").astype(str)):
                problems.append(f"{name}: column {col} differs")
    return problems, f"{len(names)} embeddings tables equal (max abs vector difference {worst:.3g})"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    ref, cand = Path(argv[0]), Path(argv[1])
    if not (ref / "metrics.parquet").is_file():
        problems, summary = compare_embeddings(ref, cand)
        for line in problems:
            print(f"compare_results: {line}", file=sys.stderr)
        if not problems:
            print(f"compare_results: {summary} in {cand} and {ref}")
        return 1 if problems else 0
    problems, compared = [], 0
    for name in ("metrics.parquet", "leaderboard.csv", "leaderboard_conditional.csv"):
        if not (ref / name).is_file():
            continue
        if not (cand / name).is_file():
            problems.append(f"{cand / name} is missing")
            continue
        problems += compare(ref / name, cand / name)
        compared += 1
    if compared == 0:
        problems.append(f"{ref} has no metrics.parquet")
    for line in problems:
        print(f"compare_results: {line}", file=sys.stderr)
    if not problems:
        n = len(pd.read_parquet(cand / "metrics.parquet"))
        print(f"compare_results: {compared} files equal ({n} metric rows, rtol {RTOL:g}) in {cand} and {ref}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
