"""One embed run over many sets, then each set's own tables: `union` and `slice`.

An axis with many small sets (fidelity: 25 sets of 20 images on the embedded default) spends most of a per-set embed
run starting Python and loading its models, and a user's real extractors are loaded once per set. `union` writes one
images.csv holding every chosen set's images (files relative to the sets' folder, `sample_index` = the set's
position among its axis's sets, so an image's id names its set: `<prompt_id>-<position>`) for one ordinary
`chexbench-generate import` and `chexbench-embed run`; `slice` then writes, per set, the rows of that run's tables that
are the set's (<sets>/<set_id>/embed/: images.parquet, synthetic-<extractor>.parquet, and the run's real tables linked,
not copied: every set is scored against the same real set). Embedding is per image, so a set's rows equal what an
embed run of that set alone would give (up to the rounding of another batch composition).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError, BadRowsError
from chexbench_schema import Embeddings, read_embeddings, read_metadata, read_table, write_table

from . import __version__
from .axes.common import IMAGES_CSV
from .plan import read_plan

log = logging.getLogger(__name__)
PRODUCER = f"chexbench-validate {__version__}"
SLICE_DIR = "embed"
IMAGES_TABLE = "images.parquet"
REAL, SYNTHETIC = "real-", "synthetic-"


def write_union(plan: Path, axis: str, controls: tuple[str, ...], out: Path) -> tuple[Path, int]:
    """out/images.csv with prompt_id, file, sample_index, set_id of every image of the axis's (chosen controls')
    sets; returns its path and the number of sets."""
    table = read_plan(plan)
    sets = table[table["axis"] == axis].reset_index(drop=True)
    if sets.empty:
        raise BadInputError(f"{plan}: no {axis} sets; build them first (chexbench-validate build {axis})")
    present = list(dict.fromkeys(sets["control"]))
    unknown = [c for c in controls if c not in present]
    if controls and not set(controls) & set(present):
        raise BadInputError(
            f"--control {', '.join(unknown)}: no such {axis} control in {plan} (controls: {', '.join(present)})"
        )
    if unknown:  # a plan built with fewer ladders than a default list of controls names
        log.warning("validate union: %s has no %s sets of control(s) %s", plan, axis, ", ".join(unknown))
    rows = []
    for position, row in sets.iterrows():
        if controls and row["control"] not in controls:
            continue
        csv = plan.parent / row["set_id"] / IMAGES_CSV
        if not csv.is_file():
            raise BadInputError(f"{csv}: not found; build the {axis} sets again (chexbench-validate build {axis})")
        images = pd.read_csv(csv, dtype=str, keep_default_na=False)
        rows.append(
            images.assign(file=row["set_id"] + "/" + images["file"], sample_index=position, set_id=row["set_id"])[
                ["prompt_id", "file", "sample_index", "set_id"]
            ]
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / IMAGES_CSV
    with atomic_path(path) as tmp:
        pd.concat(rows, ignore_index=True).to_csv(tmp, index=False)
    return path, len(rows)


def slice_runs(pairs: list[tuple[Path, Path]], sets_dir: Path) -> list[Path]:
    """Write every set's rows of each (union images.csv, run) pair's synthetic embeddings tables, link the runs' real
    tables, and write the set's images table from the first pair that holds the set, into sets_dir/<set_id>/embed/;
    returns the paths written. One table per set whichever union also holds it, so a re-run writes the same bytes."""
    written: list[Path] = []
    with_images: set[str] = set()
    for union_csv, run_dir in pairs:
        written += _slice_run(union_csv, run_dir, sets_dir, with_images)
    return written


def _slice_run(union_csv: Path, run_dir: Path, sets_dir: Path, with_images: set[str]) -> list[Path]:
    union = pd.read_csv(union_csv, dtype=str, keep_default_na=False)
    missing = [c for c in ("prompt_id", "sample_index", "set_id") if c not in union.columns]
    if missing:
        raise BadInputError(f"{union_csv}: no column(s) {', '.join(missing)}; write it with chexbench-validate union")
    set_of = dict(zip(union["prompt_id"] + "-" + union["sample_index"], union["set_id"], strict=True))
    embed_dir = run_dir / "embed"
    images_path = run_dir / "generate" / IMAGES_TABLE
    synthetic = sorted(embed_dir.glob(f"{SYNTHETIC}*.parquet"))
    real = sorted(embed_dir.glob(f"{REAL}*.parquet"))
    if not images_path.is_file() or not synthetic:
        raise BadInputError(
            f"{run_dir}: no generate/{IMAGES_TABLE} or embed/{SYNTHETIC}*.parquet; "
            f"import {union_csv} and embed it first"
        )
    images = read_table(images_path, "images")
    _check_covers(images_path, images["image_id"], set_of)
    images_extra = read_metadata(images_path).get("extra", {})
    tables = {path: read_embeddings(path) for path in synthetic}  # each read once, sliced for every set
    for path, emb in tables.items():
        _check_covers(path, emb.frame["image_id"], set_of)
    written = []
    for set_id in dict.fromkeys(union["set_id"]):
        folder = sets_dir / set_id / SLICE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        if set_id not in with_images:
            mine = images["image_id"].map(set_of).eq(set_id).to_numpy()
            table = write_table(
                images[mine].reset_index(drop=True),
                folder / IMAGES_TABLE,
                "images",
                producer=PRODUCER,
                run_id=run_dir.name,
                extra=images_extra | _origin(images_path, folder, set_id),
            )
            written.append(table)
            with_images.add(set_id)
        written += [_slice_embeddings(path, emb, set_of, set_id, folder) for path, emb in tables.items()]
        written += [_link(path, folder) for path in real]
    return written


def _check_covers(path: Path, image_ids: pd.Series, set_of: dict[str, str]) -> None:
    """Every image of the union is in the table (an embed run stops at an image it cannot decode)."""
    lacking = sorted(set(set_of) - set(image_ids))
    if lacking:
        raise BadRowsError(
            str(path),
            [f"image {i} of set {set_of[i]} is missing; import and embed the union again" for i in lacking[:5]],
        )


def _slice_embeddings(path: Path, emb: Embeddings, set_of: dict[str, str], set_id: str, folder: Path) -> Path:
    mine = emb.frame["image_id"].map(set_of).eq(set_id).to_numpy()
    frame = emb.frame[mine].reset_index(drop=True).assign(vector=list(emb.vectors[mine]))
    return write_table(
        frame,
        folder / path.name,
        "embeddings",
        producer=PRODUCER,
        run_id=emb.metadata.get("run_id"),
        extra=emb.metadata.get("extra", {}) | _origin(path, folder, set_id),
    )


def _origin(path: Path, folder: Path, set_id: str) -> dict[str, str]:
    """Where a slice's rows come from, relative to the slice's folder (a container sees other absolute paths)."""
    return {"sliced_from": os.path.relpath(path, folder), "set_id": set_id}


def _link(path: Path, folder: Path) -> Path:
    """folder/<name> -> path, relative (the sets and the runs live under the same results folder)."""
    link = folder / path.name
    target = os.path.relpath(path, folder)
    if link.is_symlink() and os.readlink(link) == target:
        return link
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)
    return link
