"""Bring existing synthetic images into a run: match a CSV's rows to the prompts table, decode, copy, tabulate.

Understood CSV conventions (columns are detected; --prompt-col / --file-col override):
- the original README / per-model generators: `prompt_INFO.csv` with `prompt,img_savename`;
- the original `generations_with_metadata.csv`: the real CSV's columns plus `synthetic_filename`
  (prompt in `annotated_prompt`; its `path` column is the *real* image and is never used as the file);
- any folder + CSV with a `prompt` or `prompt_id` column and a `filename`/`file`/`image`/`path` column.
Prompts match exactly, then after whitespace normalisation; unmatched rows are an error unless allowed, and are
then listed in unmatched.csv and counted in the manifest. Rows of one prompt get sample_index 0, 1, ... in file
order unless the CSV has a `sample_index` column.
"""

from __future__ import annotations

import hashlib
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError, BadRowsError, ImageDecodeError
from chexbench_common.hashing import sha256_file
from chexbench_common.imageio import load_grey
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.paths import resolve_under
from chexbench_common.rundir import StageRun
from chexbench_schema import read_table, write_table

from . import __version__
from .parts import IMAGES_DIR, GenerateDir

FILE_COLUMNS = ("synthetic_filename", "img_savename", "filename", "file", "image", "path")
PROMPT_COLUMNS = ("prompt_id", "annotated_prompt", "prompt")
PRODUCER = f"chexbench-generate {__version__} (import)"


@dataclass(frozen=True)
class ImportJob:
    csv: Path
    prompts: Path
    model_name: str
    results: Path
    run_id: str
    images_dir: Path | None = None
    prompt_col: str | None = None
    file_col: str | None = None
    allow_unmatched: bool = False


def _row(i: int) -> str:
    """A CSV data row as every chexbench message names it: the 1-based data row, then the file line."""
    return f"row {i + 1} (line {i + 2})"


def normalise(text: str) -> str:
    return " ".join(text.split())


def _pick(columns, wanted: str | None, candidates: tuple[str, ...], what: str, csv: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise BadInputError(f"{csv}: no column {wanted!r}; columns: {', '.join(columns)}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise BadInputError(f"{csv}: no {what} column (looked for {', '.join(candidates)}); name it with --{what}-col")


def match_rows(rows: pd.DataFrame, prompts: pd.DataFrame, prompt_col: str) -> tuple[list[str | None], list[str]]:
    """prompt_id per row (None if unmatched) and one reason per unmatched row."""
    if prompt_col == "prompt_id":
        known = set(prompts["prompt_id"])
        ids = [pid if pid in known else None for pid in rows[prompt_col]]
        return ids, [
            f"{_row(i)}: prompt_id {pid!r} is not in the prompts table"
            for i, (pid, got) in enumerate(zip(rows[prompt_col], ids, strict=True))
            if got is None
        ]
    exact = dict(zip(prompts["prompt"], prompts["prompt_id"], strict=True))
    loose: dict[str, set[str]] = {}
    for text, pid in exact.items():
        loose.setdefault(normalise(text), set()).add(pid)
    ids, reasons = [], []
    for i, text in enumerate(rows[prompt_col]):
        candidates = {exact[text]} if text in exact else loose.get(normalise(text), set())
        ids.append(next(iter(candidates)) if len(candidates) == 1 else None)
        if len(candidates) != 1:
            why = (
                "matches several prompts after whitespace normalisation"
                if candidates
                else "matches no prompt of the prompts table (exact or whitespace-normalised)"
            )
            reasons.append(f"{_row(i)}: {why}: {text[:80]!r}")
    return ids, reasons


def _sample_indexes(kept: pd.DataFrame, csv: Path) -> pd.Series:
    """The CSV's sample_index column if it has one (unique per prompt), else 0, 1, ... per prompt in file order."""
    if "sample_index" not in kept.columns:
        return kept.groupby("prompt_id", sort=False).cumcount()
    index = pd.to_numeric(kept["sample_index"], errors="coerce")
    problems = [
        f"{_row(i)}: sample_index {v!r} is not a non-negative integer"
        for i, v, n in zip(kept.index, kept["sample_index"], index, strict=True)
        if not n >= 0 or n % 1
    ]
    dup = pd.DataFrame({"p": kept["prompt_id"], "k": index}).duplicated()
    problems += [f"{_row(i)}: a second image for the same prompt and sample_index" for i in kept.index[dup]]
    if problems:
        raise BadRowsError(str(csv), problems)
    return index.astype(int)


def _decode(path: Path) -> tuple[int, int] | str:
    try:
        height, width = load_grey(path).shape
        return width, height
    except ImageDecodeError as exc:
        return str(exc)


def import_images(job: ImportJob) -> dict:
    """Import the CSV's images into Results/<model>/<run_id>/generate/; returns the stage manifest."""
    stage = StageRun(job.results, job.model_name, job.run_id, "generate", tool_version=__version__)
    with Lifecycle(stage) as life:
        return _import(job, stage, life)


def _import(job: ImportJob, stage: StageRun, life: Lifecycle) -> dict:
    gen = GenerateDir(stage.dir)
    if gen.part_dirs():
        raise BadInputError(f"{gen.root} holds generated images; import into another --run-id")
    prompts = read_table(job.prompts, "prompts")
    if not job.csv.is_file():
        raise BadInputError(f"{job.csv}: file not found")
    try:
        rows = pd.read_csv(job.csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{job.csv}: cannot be read as CSV: {str(exc).splitlines()[0]}") from None
    file_col = _pick(rows.columns, job.file_col, FILE_COLUMNS, "file", job.csv)
    prompt_col = _pick(rows.columns, job.prompt_col, PROMPT_COLUMNS, "prompt", job.csv)
    images_dir = job.images_dir or job.csv.parent
    params = {
        "mode": "import",
        "csv": str(job.csv),
        "images_dir": str(images_dir),
        "file_col": file_col,
        "prompt_col": prompt_col,
        "allow_unmatched": job.allow_unmatched,
    }
    inputs = {"prompts": job.prompts, "csv": job.csv}
    ids, unmatched = match_rows(rows, prompts, prompt_col)
    if unmatched and not job.allow_unmatched:
        raise BadRowsError(str(job.csv), unmatched + ["(pass --allow-unmatched to import the matched rows only)"])
    matched = pd.Series(ids, index=rows.index, dtype=object)
    kept = rows[matched.notna()].assign(prompt_id=matched[matched.notna()])
    if kept.empty:
        raise BadInputError(f"{job.csv}: no row matches the prompts table")
    kept["sample_index"] = _sample_indexes(kept, job.csv)
    sources = [
        resolve_under(images_dir, name, where=f"{job.csv} {_row(i)}")
        for i, name in zip(kept.index, kept[file_col], strict=True)
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:  # the files' content is part of the skip key
        hashes = list(pool.map(_sha256_or_missing, sources))
    params["sources_sha256"] = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    if life.up_to_date(params, inputs):
        return stage.read_manifest()
    with ThreadPoolExecutor(max_workers=4) as pool:
        decoded = list(pool.map(_decode, sources))
    bad = [d for d in decoded if isinstance(d, str)]
    if bad:
        raise BadRowsError(str(job.csv), bad)

    life.start(params, inputs, clear=[gen.table, gen.root / "unmatched.csv"])
    kept["image_id"] = kept["prompt_id"] + "-" + kept["sample_index"].astype(str)
    kept["path"] = [f"{iid}{src.suffix.lower()}" for iid, src in zip(kept["image_id"], sources, strict=True)]
    digests = [_copy(src, gen.images / rel) for src, rel in zip(sources, kept["path"], strict=True)]
    table = pd.DataFrame(
        {
            "image_id": kept["image_id"],
            "prompt_id": kept["prompt_id"],
            "model": job.model_name,
            "path": kept["path"],
            "seed": None,
            "sample_index": kept["sample_index"],
            "width": [d[0] for d in decoded],
            "height": [d[1] for d in decoded],
            "steps": None,
            "guidance": None,
            "dtype": None,
            "sha256": digests,
        }
    )
    write_table(
        table,
        gen.table,
        "images",
        producer=PRODUCER,
        run_id=job.run_id,
        extra={"images_root": IMAGES_DIR, "imported_from": str(job.csv)},
    )
    outputs = {"images": gen.table, "images_dir": gen.images}
    if unmatched:
        report = gen.root / "unmatched.csv"
        with atomic_path(report) as tmp:
            rows[matched.isna()].to_csv(tmp, index=False)
        outputs["unmatched"] = report
    life.update(
        counts={
            "rows": len(rows),
            "imported": len(table),
            "unmatched": len(unmatched),
            "prompts": int(table["prompt_id"].nunique()),
        }
    )
    life.finish(outputs)
    return stage.manifest


def _sha256_or_missing(path: Path) -> str:
    """The file's sha256, or 'missing' (decoding reports it with its row)."""
    try:
        return sha256_file(path)
    except OSError:
        return "missing"


def _copy(src: Path, dest: Path) -> str:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return sha256_file(dest)
