"""Convert LLaVA-Rad annotation CSVs (the CheXGenBench MIMIC splits) into validated `prompts` tables.

Pure core of `chexbench-splits`: read the 16-column CSV, parse the `chexpert_labels` dict strings, apply the
uncertainty policy, drop repeated prompts as the original does (first occurrence kept) while recording which, and
refuse malformed rows with every problem at once.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import functools
import importlib.metadata
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import write_json_atomic
from chexbench_common.errors import BadInputError, SchemaError
from chexbench_common.hashing import sha256_file
from chexbench_common.paths import path_problem
from chexbench_schema.io import read_metadata, read_table, write_table
from chexbench_schema.labels import CHEXPERT_LABELS
from chexbench_schema.tables import PROMPTS, prompt_id

LLAVARAD_COLUMNS: tuple[str, ...] = (
    "id",
    "path",
    "generate_method",
    "reason",
    "impression",
    "indication",
    "history",
    "view",
    "orientation",
    "chexpert_labels",
    "conversations",
    "annotated_prompt",
    "patientID",
    "File_Exists",
    "chexpert_labels_len",
    "Contains_Uncertainity",
)
USED_COLUMNS = ("id", "path", "view", "chexpert_labels", "annotated_prompt", "patientID")
# How an uncertain (-1) label is written out; None keeps -1.
UNCERTAINTY_POLICIES: dict[str, int | None] = {"u-zeros": 0, "u-ones": 1, "keep": None}
DEFAULT_POLICY = "u-zeros"
MANIFEST_SUFFIX = ".manifest.json"
_STUDY = re.compile(r"(?:^|/)(s\d+)(?:/|$)")


@dataclass
class SourceRow:
    """One data row of an annotation CSV: 1-based data row number, first file line, the used columns' values."""

    row: int
    line: int
    values: dict[str, str]

    def where(self, column: str | None = None) -> str:
        place = f"row {self.row} (line {self.line})"
        return f"{place}, column {column!r}" if column else place


@dataclass
class Conversion:
    """The converted prompts frame and what happened on the way (counts and dropped duplicates)."""

    frame: pd.DataFrame
    rows_in: int
    uncertain: int
    duplicates: list[dict] = field(default_factory=list)


def tool_version() -> str:
    try:
        return importlib.metadata.version("chexbench-splits")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def study_id_from_path(path: str) -> str | None:
    """The `sXXXXXXXX` folder of a MIMIC-CXR-JPG path, or None when the path has none."""
    match = _STUDY.search(path.replace("\\", "/"))
    return match.group(1) if match else None


def read_annotations(path: str | Path) -> list[SourceRow]:
    """Read an annotation CSV as strings only (ids keep leading zeros); refuse missing columns and ragged rows."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: file not found")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows, problems = [], []
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if not header:
                raise BadInputError(f"{path}: empty file; expected a header with {', '.join(LLAVARAD_COLUMNS)}")
            missing = [c for c in LLAVARAD_COLUMNS if c not in header]
            if missing:
                raise SchemaError(
                    str(path),
                    [
                        f"missing column(s) {', '.join(map(repr, missing))}; an annotation CSV has the 16 columns "
                        f"{', '.join(LLAVARAD_COLUMNS)}"
                    ],
                )
            keep = [(header.index(c), c) for c in USED_COLUMNS]
            line, number = reader.line_num + 1, 0
            for fields in reader:
                if not fields:  # blank line: skipped, as pandas does, so row numbers match the original's
                    line = reader.line_num + 1
                    continue
                number += 1
                row = SourceRow(number, line, {c: fields[i] if i < len(fields) else "" for i, c in keep})
                if len(fields) != len(header):
                    problems.append(f"{row.where()}: {len(fields)} field(s), the header has {len(header)}")
                rows.append(row)
                line = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise BadInputError(f"{path}: malformed CSV near line {reader.line_num}: {exc}") from None
    if problems:
        raise SchemaError(str(path), problems)
    if not rows:
        raise BadInputError(f"{path}: no data rows")
    return rows


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_labels(text: str) -> tuple[dict[str, int | None], list[str]]:
    """Parse a `chexpert_labels` dict string safely; return the 14 labels (1/0/-1/None) and the problems found.

    Labels with a bad value are left out of the returned dict (the row is refused anyway).
    """
    values, problems = _parse_labels_cached(text)
    return {k: v for k, v in zip(CHEXPERT_LABELS, values, strict=True) if v != "bad"}, list(problems)


@functools.lru_cache(maxsize=1 << 16)
def _parse_labels_cached(text: str) -> tuple[tuple, tuple[str, ...]]:
    """parse_labels on immutable results: label strings repeat a lot, so each distinct one is evaluated once."""
    if not text.strip():
        return ("bad",) * len(CHEXPERT_LABELS), ("empty; expected a dict of the 14 CheXpert labels",)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return ("bad",) * len(CHEXPERT_LABELS), (f"not a Python dict literal: {_short(text)}",)
    if not isinstance(value, dict):
        return ("bad",) * len(CHEXPERT_LABELS), (f"a {type(value).__name__}, not a dict of the 14 CheXpert labels",)
    problems = []
    unknown = [k for k in value if k not in CHEXPERT_LABELS]
    if unknown:
        problems.append(f"unknown label key(s) {', '.join(map(repr, unknown))}")
    missing = [k for k in CHEXPERT_LABELS if k not in value]
    if missing:
        problems.append(f"missing label key(s) {', '.join(map(repr, missing))}")
    labels, bad = [], []
    for key in CHEXPERT_LABELS:
        raw = value.get(key)
        if raw is None:
            labels.append(None)
        elif not isinstance(raw, bool) and isinstance(raw, int | float) and raw in (1, 0, -1):
            labels.append(int(raw))
        else:
            labels.append("bad")
            bad.append(f"{key!r}: {raw!r}")
    if bad:
        problems.append(f"value(s) outside 1.0/0.0/-1.0/None: {', '.join(bad)}")
    return tuple(labels), tuple(problems)


def _row_record(row: SourceRow, split: str, problems: list[str]) -> tuple[dict, dict[str, int | None]]:
    """Check one source row and build its prompts record (labels still raw); problems are appended."""
    v = row.values
    prompt = v.get("annotated_prompt", "")
    if not prompt.strip():
        problems.append(f"{row.where('annotated_prompt')}: empty prompt")
    path = v.get("path", "")
    if not path.strip():
        problems.append(f"{row.where('path')}: empty image path")
    else:
        why = path_problem(path) or (
            f"path {path!r} contains '..'" if ".." in path.replace("\\", "/").split("/") else None
        )
        if why:
            problems.append(f"{row.where('path')}: {why}")
    labels, label_problems = parse_labels(v.get("chexpert_labels", ""))
    problems.extend(f"{row.where('chexpert_labels')}: {p}" for p in label_problems)
    record = {
        "split": split,
        "prompt_id": prompt_id(prompt),
        "prompt": prompt,
        "patient_id": v.get("patientID") or None,
        "study_id": study_id_from_path(path),
        "id": v.get("id") or None,
        "image_path": path or None,
        "view": v.get("view") or None,
    }
    return record, labels


def convert_rows(
    rows: Iterable[SourceRow],
    split: str,
    *,
    source: str,
    uncertainty: str = DEFAULT_POLICY,
    keep_duplicates: bool = False,
) -> Conversion:
    """Turn annotation rows into a prompts frame; raise SchemaError naming every malformed row."""
    if uncertainty not in UNCERTAINTY_POLICIES:
        raise BadInputError(f"unknown uncertainty policy {uncertainty!r}; use {', '.join(UNCERTAINTY_POLICIES)}")
    mapped_to = UNCERTAINTY_POLICIES[uncertainty]
    problems: list[str] = []
    records, duplicates = [], []
    first: dict[str, list] = {}  # prompt -> [data row kept, its labels, occurrences so far]
    uncertain = rows_in = 0
    for row in rows:
        rows_in += 1
        record, labels = _row_record(row, split, problems)
        prompt = record["prompt"]
        if prompt in first:
            seen = first[prompt]
            seen[2] += 1
            duplicates.append(
                {
                    "row": row.row,
                    "line": row.line,
                    "id": record["id"],
                    "image_path": record["image_path"],
                    "kept_row": seen[0],
                    "labels_differ": labels != seen[1],
                }
            )
            if not keep_duplicates:
                continue
            record["prompt_id"] += f".{seen[2]}"
        else:
            first[prompt] = [row.row, labels, 1]
        for key, value in labels.items():
            if value == -1:
                uncertain += 1
                value = -1 if mapped_to is None else mapped_to
            record[key] = value
        records.append(record)
    if problems:
        raise SchemaError(source, problems)
    frame = pd.DataFrame.from_records(records, columns=PROMPTS.column_names)
    return Conversion(frame=frame, rows_in=rows_in, uncertain=uncertain, duplicates=duplicates)


def positives(frame: pd.DataFrame) -> dict[str, int]:
    """Number of rows with label 1, per CheXpert label."""
    return {label: int((frame[label] == 1).sum()) for label in CHEXPERT_LABELS}


def manifest_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + MANIFEST_SUFFIX)


def convert_file(
    input_path: str | Path,
    out: str | Path,
    split: str,
    *,
    uncertainty: str = DEFAULT_POLICY,
    keep_duplicates: bool = False,
) -> dict:
    """Convert one annotation CSV, write the prompts table and `<out>.manifest.json` atomically; return the manifest."""
    input_path, out = Path(input_path), Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise BadInputError(f"{out}: unsupported output type {out.suffix!r}; use .parquet or .csv")
    if not split.strip():
        raise BadInputError("--split must not be empty")
    if out.exists() and input_path.exists() and out.resolve() == input_path.resolve():
        raise BadInputError(f"{out}: the output would overwrite the input")
    rows = read_annotations(input_path)
    result = convert_rows(rows, split, source=str(input_path), uncertainty=uncertainty, keep_duplicates=keep_duplicates)
    digest = sha256_file(input_path)
    mapped = UNCERTAINTY_POLICIES[uncertainty]
    version = tool_version()
    extra = {
        "uncertainty_policy": uncertainty,
        "split": split,
        "source_sha256": digest,
        "deduplicated": not keep_duplicates,
        "caption_column": "annotated_prompt",
    }
    write_table(result.frame, out, PROMPTS, producer=f"chexbench-splits {version}", extra=extra)
    manifest = {
        "tool": "chexbench-splits",
        "tool_version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "input": {"path": str(input_path), "sha256": digest},
        "output": {"path": str(out), "table": PROMPTS.name, "table_version": PROMPTS.version},
        "split": split,
        "uncertainty_policy": uncertainty,
        "uncertain_labels": {"count": result.uncertain, "written_as": -1 if mapped is None else mapped},
        "rows_in": result.rows_in,
        "rows_out": len(result.frame),
        "deduplication": {
            "key": "annotated_prompt",
            "keep": "first",
            "enabled": not keep_duplicates,
            "duplicates": len(result.duplicates),
            "dropped": 0 if keep_duplicates else len(result.duplicates),
            "rows": result.duplicates,
        },
        "positives": positives(result.frame),
    }
    write_json_atomic(manifest_path(out), manifest)
    return manifest


def summarize(path: str | Path) -> str:
    """Validate a prompts table (Parquet or CSV) and describe it in one line."""
    frame = read_table(path, PROMPTS)
    meta = read_metadata(path)
    splits = ", ".join(sorted(frame["split"].dropna().unique())) or "-"
    policy = meta.get("extra", {}).get("uncertainty_policy", "unrecorded")
    counts = " ".join(f"{label.replace(' ', '_')}={n}" for label, n in positives(frame).items())
    version = meta.get("version", PROMPTS.version)
    return f"{path}: prompts v{version}, {len(frame)} rows, split {splits}, uncertainty {policy}; positives: {counts}"
