"""Read and write contract tables (Parquet, or CSV on read) with validation and self-describing metadata."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .atomic import atomic_path, write_json_atomic
from .errors import BadInputError, SchemaError
from .tables import TableSpec, get_table
from .validate import validate_frame

METADATA_KEY = b"chexbench"
_ROW = re.compile(r"^row (\d+)(?=,)")
SIDECAR_SUFFIX = ".meta.json"

_ARROW_TYPES = {
    "string": pa.string(),
    "int8": pa.int8(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}


@dataclass
class Embeddings:
    """An embeddings table split into its id columns and one (N, d) float32 matrix."""

    frame: pd.DataFrame
    vectors: np.ndarray
    metadata: dict


def non_finite_allowed(meta: dict) -> bool:
    """Whether a table's metadata lets its vectors hold NaN/inf (features undefined for some images)."""
    return meta.get("extra", {}).get("non_finite") == "allowed"


def _spec(table: str | TableSpec) -> TableSpec:
    return table if isinstance(table, TableSpec) else get_table(table)


def read_metadata(path: str | Path) -> dict:
    """The chexbench metadata of a Parquet file, or of a CSV's sidecar; {} when there is none."""
    path = Path(path)
    if path.suffix == ".parquet":
        raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
        return json.loads(raw) if raw else {}
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    return json.loads(sidecar.read_text()) if sidecar.exists() else {}


def _check_metadata(path: Path, spec: TableSpec, meta: dict, problems: list[str]) -> None:
    if not meta:
        if spec.required_metadata:
            problems.append(f"no chexbench metadata; {spec.a_table} needs {', '.join(spec.required_metadata)}")
        return
    if meta.get("table") not in (None, spec.name):
        problems.append(f"this file holds the {meta.get('table')!r} table, not the {spec.name!r} table expected here")
    version = str(meta.get("version", spec.version))
    if int(version.split(".")[0]) != spec.major:
        problems.append(
            f"{spec.name} schema version {version} is not readable by this version "
            f"({spec.version}); convert it or use a matching chexbench release"
        )
    for key in spec.required_metadata:
        if key not in meta.get("extra", {}):
            problems.append(f"metadata lacks {key!r}")


def _load_raw(path: Path, spec: TableSpec) -> pd.DataFrame:
    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            frame = table.drop_columns(
                [c for c in table.column_names if pa.types.is_fixed_size_list(table.schema.field(c).type)]
            ).to_pandas(types_mapper=None)
            for name in table.column_names:
                if pa.types.is_fixed_size_list(table.schema.field(name).type):
                    frame[name] = list(_fixed_list_to_numpy(table.column(name)))
            return frame[table.column_names]
        if path.suffix == ".csv":
            if any(c.kind == "vector" for c in spec.columns):
                raise BadInputError(f"{path}: {spec.a_table} has vectors and must be Parquet, not CSV")
            # every cell as text, so ids keep leading zeros; the validator converts per the contract
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInputError(f"{path}: cannot be read as {path.suffix[1:]}: {exc}".splitlines()[0]) from None
    raise BadInputError(f"{path}: unsupported file type {path.suffix!r}; use .parquet or .csv")


def _fixed_list_to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    array = column.combine_chunks()
    d = array.type.list_size
    return array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, d)


def read_table(path: str | Path, table: str | TableSpec) -> pd.DataFrame:
    """Read a Parquet or CSV table, validate it, and raise SchemaError listing every problem."""
    path, spec = Path(path), _spec(table)
    frame = _load_raw(path, spec)
    problems: list[str] = []
    meta = read_metadata(path)
    _check_metadata(path, spec, meta, problems)
    frame, row_problems = validate_frame(frame, spec, non_finite_allowed(meta))
    if path.suffix == ".csv":  # add the file line (the header is line 1) to the 1-based data row
        row_problems = [_ROW.sub(lambda m: f"row {m[1]} (line {int(m[1]) + 1})", p, count=1) for p in row_problems]
    problems.extend(row_problems)
    if problems:
        raise SchemaError(str(path), problems)
    frame.attrs["chexbench"] = meta
    return frame


def read_embeddings(path: str | Path) -> Embeddings:
    """Read and validate an embeddings table, returning its vectors as one float32 matrix."""
    frame = read_table(path, "embeddings")
    vectors = np.stack(frame.pop("vector").to_list()) if len(frame) else np.zeros((0, 0), np.float32)
    return Embeddings(frame=frame, vectors=vectors.astype(np.float32, copy=False), metadata=frame.attrs["chexbench"])


def _arrow_table(frame: pd.DataFrame, spec: TableSpec) -> pa.Table:
    arrays, fields = [], []
    for col in spec.columns:
        values = frame[col.name]
        if col.kind == "vector":
            matrix = np.stack(values.to_list()).astype(np.float32) if len(values) else np.zeros((0, 1), np.float32)
            arr = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])
        else:
            arr = pa.array(values.astype(object).where(values.notna(), None).to_list(), type=_ARROW_TYPES[col.kind])
        arrays.append(arr)
        fields.append(pa.field(col.name, arr.type, nullable=col.nullable))
    for extra in frame.columns:
        if extra not in spec.column_names:
            arr = pa.array(frame[extra].astype(object).where(frame[extra].notna(), None).to_list())
            arrays.append(arr)
            fields.append(pa.field(extra, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_table(
    frame: pd.DataFrame,
    path: str | Path,
    table: str | TableSpec,
    *,
    producer: str,
    run_id: str | None = None,
    extra: dict | None = None,
) -> Path:
    """Validate, then write atomically as Parquet (or CSV plus a .meta.json sidecar)."""
    path, spec = Path(path), _spec(table)
    meta = {
        "table": spec.name,
        "version": spec.version,
        "producer": producer,
        "run_id": run_id,
        "extra": dict(extra or {}),
    }
    problems: list[str] = []
    _check_metadata(path, spec, meta, problems)
    frame, row_problems = validate_frame(frame, spec, non_finite_allowed(meta))
    problems.extend(row_problems)
    if problems:
        raise SchemaError(f"{path} (not written)", problems)
    arrow = _arrow_table(frame, spec)
    if path.suffix == ".parquet":
        arrow = arrow.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
        with atomic_path(path) as tmp:
            pq.write_table(arrow, tmp, compression="zstd")
    elif path.suffix == ".csv":
        if any(c.kind == "vector" for c in spec.columns):
            raise BadInputError(f"{path}: {spec.a_table} has vectors; write it as .parquet")
        write_json_atomic(path.with_name(path.name + SIDECAR_SUFFIX), meta)
        with atomic_path(path) as tmp:
            pacsv.write_csv(arrow, tmp)
    else:
        raise BadInputError(f"{path}: unsupported file type {path.suffix!r}; use .parquet or .csv")
    return path


def write_embeddings(
    frame: pd.DataFrame,
    vectors: np.ndarray,
    path: str | Path,
    *,
    producer: str,
    extractor: str,
    weights_sha256: str,
    preprocessing: dict | str,
    run_id: str | None = None,
    extra: dict | None = None,
) -> Path:
    """Write an embeddings table from id columns plus an (N, d) matrix."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(frame):
        raise BadInputError(f"{path}: {len(frame)} rows but vectors of shape {vectors.shape}")
    frame = frame.copy()
    frame["vector"] = list(vectors)
    meta = {
        "extractor": extractor,
        "weights_sha256": weights_sha256,
        "preprocessing": preprocessing,
        "dim": int(vectors.shape[1]),
        **(extra or {}),
    }
    return write_table(frame, path, "embeddings", producer=producer, run_id=run_id, extra=meta)
