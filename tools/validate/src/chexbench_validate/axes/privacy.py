"""The privacy axis: synthetic sets holding a known share of copies of training images, at each strength of the
privacy stage's positive-control ladder, the rest real images the training pool never saw.

The copies are the stage's own: `chexbench-privacy sample` (on the train split) copies training images at every
strength (exact, mild, moderate, strong) into its control folder, and this builder takes them from there, so the sets
hold exactly what the stage's control holds. Every set has N images: for a fraction p > 0 the first
k = max(1, round(p N)) control sources' copies at that strength (each under its source's prompt, so the stage knows
its source), then unseen images (the `unseen` split: patients in neither the training pool nor the calibration
holdout), each under a sampled training prompt that is no copy's source, as a generator that memorised nothing would
answer that prompt. The copy-free set (p = 0, control `none`) is shared by every strength's series; `level` is the
realised share k / N.

All distinct images (the unseen ones and the copies at every strength) are also written once to `privacy-all` (not
a planned set), embedded once; each set's privacy run reads its vectors from there. Image ids stay unique across
sets because the `sample_index` column fixes them (`<prompt_id>-<sample_index>`: 0 for an unseen image, 1 + the
strength's rung for a copy).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import click
import numpy as np
import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError
from chexbench_common.paths import resolve_under
from chexbench_schema import read_table
from PIL import Image

from ..plan import PlannedSet, add_sets, run_id_for
from ..splits import split_prompts
from .common import IMAGES_CSV, build_command, fresh_folder, load_pool_image, read_pool, save_grey

log = logging.getLogger(__name__)
AXIS = "privacy"
NONE = "none"
UNION = "privacy-all"
STRENGTHS = ("exact", "mild", "moderate", "strong")  # the privacy stage's ladder, weakest change first
DEFAULT_FRACTIONS = (0.0, 0.01, 0.05, 0.2, 1.0)
SAMPLE_PROMPTS = "prompts.parquet"
CONTROL_TABLE = "control/images.parquet"
CONTROL_AUGMENTATIONS = "control/augmentations.csv"


def copies_for(fraction: float, n: int) -> int:
    """Copies in a set of n at this fraction: none at 0, else at least one (so 1 % of a small set is not 0 %)."""
    return 0 if fraction == 0 else min(n, max(1, int(round(fraction * n))))


def set_id(strength: str, copies: int) -> str:
    return f"{AXIS}-{NONE}" if copies == 0 else f"{AXIS}-{strength}-k{copies}"


def read_control(sample_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sampled prompts and the control copies (image_id, prompt_id, file, strength) of a `privacy sample`."""
    for rel in (SAMPLE_PROMPTS, CONTROL_TABLE, CONTROL_AUGMENTATIONS):
        if not (sample_dir / rel).is_file():
            raise BadInputError(f"{sample_dir / rel}: missing; run `chexbench-privacy sample` on the train split first")
    sampled = read_table(sample_dir / SAMPLE_PROMPTS, "prompts")
    control = read_table(sample_dir / CONTROL_TABLE, "images")
    strengths = pd.read_csv(sample_dir / CONTROL_AUGMENTATIONS).set_index("image_id")["strength"]
    unknown = sorted(set(control["image_id"]) - set(strengths.index))
    if unknown:
        raise BadInputError(f"{sample_dir / CONTROL_AUGMENTATIONS}: no strength for control image {unknown[0]}")
    root = sample_dir / "control" / "images"
    control = control.assign(
        strength=strengths.loc[control["image_id"]].to_numpy(),
        file=[resolve_under(root, p, where=f"{sample_dir / CONTROL_TABLE}") for p in control["path"]],
    )
    return sampled, control


def _link(source: Path, target: Path) -> None:
    """A hard link where the file system allows one (the sets share their files), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _write_csv(folder: Path, rows: list[dict]) -> None:
    with atomic_path(folder / IMAGES_CSV) as tmp:
        pd.DataFrame(rows, columns=["prompt_id", "file", "sample_index"]).to_csv(tmp, index=False)


def build(
    pool_prompts: Path,
    pool_root: Path,
    out: Path,
    seed: int,
    sample_dir: Path,
    n: int,
    fractions: tuple[float, ...],
    unseen_split: str,
) -> list[PlannedSet]:
    """Write the union set and every (strength, fraction) set under `out`, their rows into out/plan.csv."""
    pool = read_pool(pool_prompts)
    sampled, control = read_control(sample_dir)
    sources = list(dict.fromkeys(control["prompt_id"]))
    if len(sources) < n:
        raise BadInputError(
            f"{sample_dir / CONTROL_TABLE}: {len(sources)} control sources, but a set of -n {n} at 100 % needs {n}; "
            f"run `chexbench-privacy sample --controls {n}` (or lower -n)"
        )
    missing = sorted(set(STRENGTHS) - set(control["strength"]))
    if missing:
        raise BadInputError(f"{sample_dir / CONTROL_TABLE}: no {missing[0]} copies; rerun `chexbench-privacy sample`")
    free = [p for p in sampled["prompt_id"] if p not in set(sources)]
    unseen = split_prompts(out, pool, unseen_split)
    if len(unseen) < n or len(free) < n:
        raise BadInputError(
            f"-n {n}: the {unseen_split!r} split has {len(unseen)} images and {len(free)} sampled prompts are no "
            "copy's source; a set needs n of each (lower -n, or sample more prompts)"
        )
    rng = np.random.default_rng([seed, 7])
    unseen = unseen.iloc[np.sort(rng.choice(len(unseen), n, replace=False))].reset_index(drop=True)
    answered = [free[i] for i in np.sort(rng.choice(len(free), n, replace=False))]
    size = int(read_table(sample_dir / CONTROL_TABLE, "images")["width"].iloc[0])

    union = fresh_folder(out / UNION)
    unseen_rows = []
    for i, row in enumerate(unseen.to_dict("records")):
        grey = load_pool_image(pool_root, row, None)
        square = Image.fromarray(grey.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR)
        name = f"unseen-{row['prompt_id']}.png"
        save_grey(np.clip(np.asarray(square), 0, 1), union / "images" / name)
        unseen_rows.append({"prompt_id": answered[i], "file": f"images/{name}", "sample_index": 0})
    copy_rows = {}
    for rung, strength in enumerate(STRENGTHS, start=1):
        part = control[control["strength"] == strength].set_index("prompt_id")
        copy_rows[strength] = []
        for source in sources[:n]:
            name = f"{strength}-{source}.png"
            _link(part.loc[source, "file"], union / "images" / name)
            copy_rows[strength].append({"prompt_id": source, "file": f"images/{name}", "sample_index": rung})
    _write_csv(union, unseen_rows + [r for rows in copy_rows.values() for r in rows])
    planned = []

    counts = sorted({copies_for(f, n) for f in fractions})
    for strength in STRENGTHS:
        for k in counts:
            if k == 0 and strength != STRENGTHS[0]:
                continue  # one copy-free set serves every strength
            sid = set_id(strength, k)
            folder = fresh_folder(out / sid)
            rows = copy_rows[strength][:k] + unseen_rows[k:]
            for r in rows:
                _link(union / r["file"], folder / r["file"])
            _write_csv(folder, rows)
            label = f"{k}/{n} copies ({k / n:.1%})"
            note = f"{k} {strength} copies of training images, {n - k} unseen images" if k else f"{n} unseen images"
            planned.append(
                PlannedSet(
                    sid,
                    AXIS,
                    NONE if k == 0 else strength,
                    k / n,
                    label,
                    run_id_for(sid),
                    strength="" if k == 0 else strength,
                    note=note,
                )
            )
    add_sets(out, planned)
    log.info("validate: wrote %d privacy sets of %d images and %s", len(planned), n, UNION)
    return planned


@build_command(
    "privacy",
    "Synthetic sets with a known share of copies of training images at each strength of the privacy ladder (taken "
    "from a `chexbench-privacy sample` of the train split), the rest unseen real images; plus `privacy-all`, every "
    "distinct image once, for one embedding run.",
)
@click.option(
    "--sample-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="privacy-sample folder of `chexbench-privacy sample` run on the train split (its control copies).",
)
@click.option("-n", "--n", "n", type=click.IntRange(min=2), default=32, show_default=True, help="Images per set.")
@click.option(
    "--fraction",
    "fractions",
    type=click.FloatRange(0, 1),
    multiple=True,
    help="Share of copies in a set (repeat) [default: 0, 0.01, 0.05, 0.2, 1].",
)
@click.option("--unseen-split", default="unseen", show_default=True, help="Split of the never-seen real images.")
def command(pool_prompts, pool_root, out, seed, sample_dir, n, fractions, unseen_split):
    planned = build(pool_prompts, pool_root, out, seed, sample_dir, n, fractions or DEFAULT_FRACTIONS, unseen_split)
    for planned_set in planned:
        click.echo(f"{planned_set.set_id}\t{planned_set.run_id}")
