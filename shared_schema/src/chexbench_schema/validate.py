"""Validate a DataFrame against a TableSpec, collecting every problem with its row and column.

Hand-written rather than pandera: the contract needs Arrow fixed-size-list vectors, relative-path
checks and messages that name the file, the 1-based data row and the column, all reported at once.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .paths import path_problem
from .tables import Column, TableSpec

_INT_RANGES = {"int8": (-(2**7), 2**7 - 1), "int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
PANDAS_DTYPES = {"int8": "Int8", "int32": "Int32", "int64": "Int64", "float64": "float64", "bool": "boolean"}


def _rows(mask) -> list[int]:
    return [int(i) for i in np.flatnonzero(np.asarray(mask))]


def _coerce_numeric(col: Column, series: pd.Series, problems: list[str]) -> pd.Series:
    """Convert strings or numbers to the column's numeric kind; record rows that do not convert."""
    raw = series.map(lambda v: None if v is None or (isinstance(v, str) and v.strip() == "") else v)
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & numeric.isna()
    for i in _rows(bad):
        problems.append(f"row {i + 1}, column {col.name!r}: {raw.iloc[i]!r} is not a number")
    if col.kind == "float64":
        return numeric.astype("float64")
    if col.kind == "bool":
        ok = numeric.isna() | numeric.isin([0, 1])
        for i in _rows(~ok):
            problems.append(f"row {i + 1}, column {col.name!r}: {raw.iloc[i]!r} is not a boolean (0/1)")
        return numeric.where(ok).astype("boolean")
    lo, hi = _INT_RANGES[col.kind]
    values = numeric.to_numpy(dtype="float64", na_value=np.nan).copy()
    with np.errstate(invalid="ignore"):
        fractional = ~np.isnan(values) & (np.floor(values) != values)
        out_of_range = ~np.isnan(values) & ((values < lo) | (values > hi))
    for i in _rows(fractional | out_of_range):
        problems.append(f"row {i + 1}, column {col.name!r}: {raw.iloc[i]!r} is not an {col.kind} integer")
    values[fractional | out_of_range] = np.nan
    return pd.array(np.where(np.isnan(values), None, values).tolist(), dtype=PANDAS_DTYPES[col.kind])


def _check_vector(col: Column, series: pd.Series, problems: list[str], allow_non_finite: bool) -> pd.Series:
    lengths = series.map(lambda v: -1 if v is None else len(v))
    if (lengths < 0).any():
        for i in _rows(lengths < 0):
            problems.append(f"row {i + 1}, column {col.name!r}: missing vector")
    elif len(series) and not allow_non_finite:
        matrix = np.stack(series.to_list()).astype(np.float32, copy=False)
        for i in _rows(~np.isfinite(matrix).all(axis=1)):
            problems.append(f"row {i + 1}, column {col.name!r}: vector has NaN or infinite values")
    return series


def _check_strings(col: Column, series: pd.Series, problems: list[str]) -> pd.Series:
    # Plain Python lists: pandas 3 re-infers mapped strings as `str` dtype and turns None back into NaN.
    cleaned = [None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v) for v in series.tolist()]
    values = pd.Series([None if v is None or v.strip() == "" else v for v in cleaned], index=series.index, dtype=object)
    if col.pattern is not None:
        rx = re.compile(col.pattern)
        for i, v in enumerate(values):
            if v is not None and not rx.fullmatch(v):
                problems.append(f"row {i + 1}, column {col.name!r}: {v!r} does not match {col.pattern}")
    if col.relative_path:
        for i, v in enumerate(values):
            why = v is not None and path_problem(v)
            if why:
                problems.append(f"row {i + 1}, column {col.name!r}: {why}")
    return values


def validate_frame(df: pd.DataFrame, spec: TableSpec, allow_non_finite: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Return the frame with contract dtypes and every problem found (empty list when valid). Vectors must be finite
    unless `allow_non_finite` (a table whose metadata says `non_finite: allowed`, e.g. radiomics features)."""
    problems: list[str] = []
    df = df.reset_index(drop=True)
    missing = [c.name for c in spec.columns if c.name not in df.columns]
    if missing:
        problems.append(
            f"missing column(s) {', '.join(repr(m) for m in missing)}; {spec.a_table} needs "
            f"{', '.join(spec.column_names)}"
        )
    out = {}
    for col in spec.columns:
        if col.name not in df.columns:
            continue
        series = df[col.name]
        if col.kind == "string":
            series = _check_strings(col, series, problems)
        elif col.kind == "vector":
            series = _check_vector(col, series, problems, allow_non_finite)
        else:
            series = pd.Series(_coerce_numeric(col, series, problems))
        nulls = series.isna().to_numpy()
        if not col.nullable:
            for i in _rows(nulls):
                problems.append(f"row {i + 1}, column {col.name!r}: empty value; this column is required")
        if col.allowed is not None:
            bad = ~nulls & ~series.isin(list(col.allowed)).to_numpy(dtype=bool)
            shown = "/".join(str(a) for a in col.allowed) + ("/blank" if col.nullable else "")
            for i in _rows(bad):
                value = series.iloc[i]
                value = value.item() if hasattr(value, "item") else value
                problems.append(f"row {i + 1}, column {col.name!r}: {value!r} is not one of {shown}")
        out[col.name] = series
    for key in spec.unique:
        if not all(k in out for k in key):
            continue
        frame = pd.DataFrame({k: out[k] for k in key})
        dup = frame.duplicated(keep=False).to_numpy()
        first_seen: dict = {}
        for i in _rows(dup):
            value = tuple(frame.iloc[i])
            if value in first_seen:
                shown = value[0] if len(value) == 1 else value
                problems.append(
                    f"row {i + 1}, column {'+'.join(key)!r}: duplicate value {shown!r} "
                    f"(first at row {first_seen[value] + 1})"
                )
            else:
                first_seen[value] = i
    result = pd.DataFrame(out, index=df.index)
    for extra in df.columns:
        if extra not in out:
            result[extra] = df[extra]
    return result, problems
