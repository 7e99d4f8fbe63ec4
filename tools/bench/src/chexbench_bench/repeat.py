"""Compare two results roots made by the same commands with the same seeds: every stage's tables must be equal.

A stage folder is a folder with a manifest.json directly under <results>/<model>/<run_id>/ (plus the leaderboard
folder under <results>/). Every table it holds (.parquet, .csv, .json, in any sub-folder) is compared with the other
root's copy value by value, exactly: two floats are equal only when they are the same number (NaN equals NaN). Only
the files and fields listed below are left out, each because it legitimately changes between identical runs.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.errors import EXIT_CONTRACT, ChexbenchError
from chexbench_common.rundir import MANIFEST

TABLE_SUFFIXES = (".parquet", ".csv", ".json")

# Files that are provenance, not results: they differ between identical runs by design.
EXCLUDED_FILES = {
    MANIFEST: "provenance: start and end times, durations, host, process ids, absolute paths",
}

# What a manifest records about how its stage ran: differing there, the two runs did not run the same thing.
RUN_DEFINITION = ("tool_version", "params", "weights")

# Fields (table columns or JSON keys, at any depth) that legitimately differ between identical runs: the report's
# provenance section repeats them from the manifests.
EXCLUDED_FIELDS = {
    "started": "wall-clock time a stage started",
    "ended": "wall-clock time a stage ended",
    "seconds": "how long a stage took",
    "host": "machine name",
}

# JSON paths (list positions written []) of one file that legitimately differ between identical runs.
EXCLUDED_PATHS = {
    ("report.json", "provenance.stages[].inputs"): "sha256 of each stage's input files, repeated from the manifests: "
    "a file that records its run folder (an embeddings table records its weights' path) hashes differently under "
    "another results root; the tables themselves are compared value by value",
    ("report.json", "provenance.stages[].command"): "the command line each stage ran, repeated from its manifest: its "
    "program's path is the runner's (.venv/bin on the host, /opt/venv/bin in a stage image)",
}

# What a path under either results root is read as, so that tables recording paths compare equal across the roots.
ROOT_PLACEHOLDER = "<results>"

# Columns that name a row of a long-format table (the metrics table and its kin); the rest are compared per row.
KEY_COLUMNS = ("stage", "setting", "fraction", "seed", "metric", "subset", "extractor", "label")
LEADERBOARD = "_leaderboard"
MAX_SHOWN = 3


class RunsDifferError(ChexbenchError):
    """Two runs of the same commands with the same seeds gave different tables: the results are not reproducible."""

    exit_code = EXIT_CONTRACT


@dataclass(frozen=True)
class Difference:
    file: str
    where: str
    a: object
    b: object

    @property
    def delta(self) -> float | None:
        """|a - b| for two numbers, the largest one for two vectors of the same length, else None."""
        if _is_number(self.a) and _is_number(self.b):
            return abs(float(self.a) - float(self.b))
        if _numbers(self.a) and _numbers(self.b) and len(self.a) == len(self.b):
            return float(np.nanmax(np.abs(np.subtract(self.a, self.b, dtype=np.float64)), initial=0.0))
        return None

    def describe(self) -> str:
        delta = self.delta
        by = f" (|Δ| {delta:.3g})" if delta is not None and math.isfinite(delta) else ""
        return f"{self.file}: {self.where}: {_short(self.a)} vs {_short(self.b)}{by}"


@dataclass
class StageComparison:
    name: str
    tables: int = 0
    values: int = 0
    differences: list[Difference] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # a table on one side only, unreadable, other shape
    not_same_run: list[str] = field(default_factory=list)  # what the two manifests say was run differently

    @property
    def equal(self) -> bool:
        return not self.differences and not self.problems

    def line(self) -> str:
        """One line: equal, or what differs first and by how much."""
        if self.equal:
            return f"{self.name}: equal ({self.tables} tables, {self.values} values)"
        shown = [*self.problems, *(d.describe() for d in _largest_first(self.differences))]
        more = f"; ... and {len(shown) - MAX_SHOWN} more" if len(shown) > MAX_SHOWN else ""
        count = f"{len(self.differences)} of {self.values} values" if self.differences else "tables"
        cause = (
            f" [not the same inputs or settings: the manifests differ in {', '.join(self.not_same_run)}]"
            if self.not_same_run
            else ""
        )
        return f"{self.name}: DIFFERS ({count}): " + "; ".join(shown[:MAX_SHOWN]) + more + cause


def stage_folders(results: Path, model: str) -> list[str]:
    """Stage folders relative to `results`: <model>/<run_id>/<stage> with a manifest, and the leaderboard folder."""
    found = [p.parent.relative_to(results).as_posix() for p in sorted(results.glob(f"{model}/*/*/manifest.json"))]
    if (results / LEADERBOARD).is_dir():
        found.append(LEADERBOARD)
    return found


def table_files(folder: Path) -> list[str]:
    """Every table under a stage folder (relative paths), excluded files left out."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in TABLE_SUFFIXES and p.name not in EXCLUDED_FILES
    )


def compare_roots(a: Path, b: Path, model: str) -> list[StageComparison]:
    """One comparison per stage folder found in either root."""
    names = sorted(set(stage_folders(a, model)) | set(stage_folders(b, model)))
    comparisons = [compare_stage(a, b, name) for name in names]
    for comparison in comparisons:
        if not comparison.equal:
            comparison.not_same_run = run_definition_changes(a, b, comparison.name)
    return comparisons


def run_definition_changes(a: Path, b: Path, name: str) -> list[str]:
    """What the stage's two manifests say was run differently (tool version, parameters, weights, input contents),
    each root's own path read as the same place: a difference there is a changed command or code, not chance."""
    found = []
    for root in (a, b):
        try:
            manifest = json.loads(_in_root((root / name / MANIFEST).read_text(), root))
        except (OSError, ValueError):
            return []
        # not evidence: an input that is itself a manifest (the report's; its times differ by design), or one the
        # stage made itself in its own folder (llava-report's predictions: they are what is being compared)
        inputs = {
            k: v.get("sha256")
            for k, v in manifest.get("inputs", {}).items()
            if isinstance(v, dict)
            and Path(str(v.get("path", ""))).name != MANIFEST
            and not str(v.get("path", "")).startswith(f"{ROOT_PLACEHOLDER}/{name}/")
        }
        found.append({key: manifest.get(key) for key in RUN_DEFINITION} | {"inputs": inputs})
    _, differences = compare_json(*found, MANIFEST)
    return sorted({".".join(d.where.split("[")[0].split(".")[:2]) for d in differences})


def compare_stage(root_a: Path, root_b: Path, name: str) -> StageComparison:
    """Every table of one stage folder, <root>/<name>, in both roots."""
    out = StageComparison(name)
    a, b = root_a / name, root_b / name
    if not a.is_dir() or not b.is_dir():
        out.problems.append(f"only in the {'first' if a.is_dir() else 'second'} run")
        return out
    files_a, files_b = set(table_files(a)), set(table_files(b))
    out.problems.extend(f"{f}: only in the first run" for f in sorted(files_a - files_b))
    out.problems.extend(f"{f}: only in the second run" for f in sorted(files_b - files_a))
    for rel in sorted(files_a & files_b):
        out.tables += 1
        try:
            values, differences = compare_file((root_a, a / rel), (root_b, b / rel), rel)
        except (OSError, ValueError) as exc:
            out.problems.append(f"{rel}: cannot be read ({exc})")
            continue
        out.values += values
        out.differences.extend(differences)
    return out


def compare_file(a: tuple[Path, Path], b: tuple[Path, Path], rel: str) -> tuple[int, list[Difference]]:
    """(values compared, differences) of one table present in both runs; a and b are (results root, table file)."""
    if rel.endswith(".json"):
        return compare_json(*(json.loads(_in_root(path.read_text(), root)) for root, path in (a, b)), rel)
    if rel.endswith(".csv"):
        return compare_frames(
            *(pd.read_csv(io.StringIO(_in_root(path.read_text(), root))) for root, path in (a, b)), rel
        )
    frames = []
    for root, path in (a, b):
        frame = pd.read_parquet(path)
        text = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]
        frames.append(frame.assign(**{c: frame[c].map(lambda v, r=root: _in_root(v, r)) for c in text}))
    return compare_frames(*frames, rel)


def _in_root(text, root: Path):
    """A text with the results root's own path (as given and resolved) written <results>: the two runs' roots differ
    by design, what lies under them must not. Anything but a string is returned as it is."""
    if not isinstance(text, str):
        return text
    forms = {str(root.resolve()), str(root.absolute()), str(root)} - {".", ""}
    # the root itself, or the root followed by a path, not a name that merely ends the same way
    pattern = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.sub(rf"(?<![\w.-])(?:{pattern})(?=[/\s,;:\"'\])]|$)", ROOT_PLACEHOLDER, text, flags=re.MULTILINE)


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, rel: str) -> tuple[int, list[Difference]]:
    """Cell-by-cell comparison. Rows of a long-format table are named by their key columns (a metric's name, subset,
    extractor, ...); the same rows in another order are a difference too, and the values are then matched by name."""
    a, b = (f.drop(columns=[c for c in f.columns if c in EXCLUDED_FIELDS]).reset_index(drop=True) for f in (a, b))
    if list(a.columns) != list(b.columns):
        return 0, [Difference(rel, "columns", list(a.columns), list(b.columns))]
    keys = [c for c in KEY_COLUMNS if c in a.columns] if "metric" in a.columns else []
    names_a, names_b = _row_names(a, keys), _row_names(b, keys)
    differences = []
    if names_a != names_b:
        if sorted(names_a) != sorted(names_b) or len(set(names_a)) < len(names_a):
            only_a, only_b = sorted(set(names_a) - set(names_b)), sorted(set(names_b) - set(names_a))
            return 0, [Difference(rel, f"rows ({len(a)} vs {len(b)})", only_a[:3], only_b[:3])]
        differences.append(Difference(rel, "row order", names_a[:3], names_b[:3]))
        b = b.set_axis(names_b).loc[names_a]
    for column in a.columns:
        for name, x, y in zip(names_a, a[column].to_numpy(), b[column].to_numpy(), strict=True):
            if not same(x, y):
                differences.append(Difference(rel, f"{name} {column}", _plain(x), _plain(y)))
    return a.size, differences


def _row_names(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """A name per row: its key columns' values (missing ones left out), else its position."""
    if not keys:
        return [f"row {i}" for i in range(len(frame))]
    return [" ".join(str(v) for v in row if not _missing(v)) for row in frame[keys].itertuples(index=False)]


def compare_json(a, b, rel: str, where: str = "") -> tuple[int, list[Difference]]:
    """Leaf-by-leaf comparison of two JSON documents; excluded keys are skipped at any depth, excluded paths where
    they are."""
    if isinstance(a, dict) and isinstance(b, dict):
        paths = {k: f"{where}.{k}" if where else k for k in {**a, **b} if k not in EXCLUDED_FIELDS}
        paths = {k: p for k, p in paths.items() if (Path(rel).name, re.sub(r"\[\d+\]", "[]", p)) not in EXCLUDED_PATHS}
        found = [compare_json(a.get(k, _MISSING), b.get(k, _MISSING), rel, p) for k, p in paths.items()]
        return sum(n for n, _ in found), [d for _, ds in found for d in ds]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        found = [compare_json(x, y, rel, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True))]
        return sum(n for n, _ in found), [d for _, ds in found for d in ds]
    return 1, [] if same(a, b) else [Difference(rel, where or "document", a, b)]


def same(x, y) -> bool:
    """Exact equality; NaN equals NaN, arrays element by element, a missing value only another missing value."""
    if isinstance(x, (np.ndarray, list, tuple)) or isinstance(y, (np.ndarray, list, tuple)):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            return False
        if x.dtype.kind in "fc" and y.dtype.kind in "fc":
            return bool(np.array_equal(x, y, equal_nan=True))
        return all(same(p, q) for p, q in zip(x.ravel().tolist(), y.ravel().tolist(), strict=True))
    if x is _MISSING or y is _MISSING:
        return x is y
    if _missing(x) or _missing(y):
        return _missing(x) and _missing(y)
    return bool(x == y)


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


_MISSING = _Missing()


def _missing(x) -> bool:
    return x is None or x is pd.NA or x is pd.NaT or (isinstance(x, float) and math.isnan(x))


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _numbers(x) -> bool:
    return isinstance(x, list) and bool(x) and all(_is_number(v) for v in x)


def _plain(x):
    """A cell as a plain Python value (numbers stay numbers, arrays show their largest difference elsewhere)."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def _short(x, width: int = 40) -> str:
    if isinstance(x, float):
        return f"{x:.10g}"
    if _numbers(x):
        return f"[{len(x)} numbers]"
    text = str(x)
    return text if len(text) <= width else text[: width - 1] + "…"


def _largest_first(differences: list[Difference]) -> list[Difference]:
    """Differences with the largest |Δ| first (non-numeric ones after them), in file order otherwise."""
    return sorted(differences, key=lambda d: -(d.delta if d.delta is not None and math.isfinite(d.delta) else -1))
