"""plan.csv: one row per known-answer set, appended by every `build` (a rebuilt set replaces its own row).

Columns: set_id, axis, control, level, level_label, strength, run_id, note. `level` orders a ladder (0 = the
undegraded case), `strength` is only used by the privacy ladder, `run_id` is the run the set's stages write
(`validate-<set_id>`, or one run shared by several sets whose stage scores them side by side).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError, BadRowsError, StageBusyError
from chexbench_common.lock import FolderLock
from chexbench_common.options import FOLDER_NAME

PLAN = "plan.csv"
COLUMNS = ("set_id", "axis", "control", "level", "level_label", "strength", "run_id", "note")
RUN_PREFIX = "validate-"
# Several builds may write the plan at once (make validate's axes as parallel Slurm jobs) and each holds the folder's
# lock only for the plan's read-modify-write, so a busy lock is waited for (this long at most), not an error.
PLAN_LOCK_WAIT_S = 120.0


@dataclass(frozen=True)
class PlannedSet:
    set_id: str
    axis: str
    control: str
    level: float
    level_label: str
    run_id: str
    strength: str = ""
    note: str = ""

    def __post_init__(self):
        for name in ("set_id", "run_id"):
            if not FOLDER_NAME.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not a folder name")


def run_id_for(set_id: str) -> str:
    return RUN_PREFIX + set_id


def add_sets(out: Path, sets: list[PlannedSet]) -> Path:
    """Write `sets` into out/plan.csv, replacing rows with the same set_id (under the folder's lock)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / PLAN
    with _plan_lock(out):
        old = read_plan(path) if path.is_file() else pd.DataFrame(columns=COLUMNS)
        new = pd.DataFrame([asdict(s) for s in sets], columns=COLUMNS)
        kept = old[~old["set_id"].isin(new["set_id"])]
        table = pd.concat([kept, new], ignore_index=True) if len(kept) else new
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    return path


@contextmanager
def _plan_lock(out: Path) -> Iterator[None]:
    """The sets folder's lock, waiting while another build holds it."""
    deadline = time.monotonic() + PLAN_LOCK_WAIT_S
    while True:
        lock = FolderLock(out)
        try:
            lock.acquire()
            break
        except StageBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield
    finally:
        lock.release()


def read_plan(path: Path) -> pd.DataFrame:
    """plan.csv with its columns checked: one line per problem (file, row, column)."""
    if not path.is_file():
        raise BadInputError(f"{path}: no plan; build the known-answer sets first (chexbench-validate build ...)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot be read as CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise BadInputError(f"{path}: missing column(s) {', '.join(missing)}; a plan has {', '.join(COLUMNS)}")
    problems = []
    levels = pd.to_numeric(table["level"], errors="coerce")
    for i, row in table.iterrows():
        where = f"row {i + 1} (line {i + 2})"
        if levels[i] != levels[i]:
            problems.append(f"{where}: level {row['level']!r} is not a number")
        for name in ("set_id", "run_id"):
            if not FOLDER_NAME.fullmatch(row[name]):
                problems.append(f"{where}: {name} {row[name]!r} is not a folder name")
        if not row["axis"] or not row["control"]:
            problems.append(f"{where}: empty axis or control")
    for i in table.index[table["set_id"].duplicated()]:
        problems.append(f"row {i + 1} (line {i + 2}): set_id {table.at[i, 'set_id']!r} appears twice")
    if problems:
        raise BadRowsError(str(path), problems)
    return table.assign(level=levels)
