"""The fidelity axis: holdout images at every level of every degradation ladder, mode collapse, and the holdout
itself (level 0, the best a generator can do), each a set for `chexbench-generate import` -> embed -> fidelity
against the reference half of the pool.

Sets (control, level): `original` 0 = the holdout images; `<ladder>` 1..L = each holdout image at the ladder's
level-th strength (chexbench_validate.degrade.LADDERS); `collapse` 1..C = k distinct holdout images (k from
`--collapse`, largest first) repeated, in turn, to the holdout's size, one per holdout prompt.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
import numpy as np
from chexbench_common.errors import BadInputError
from chexbench_common.progress import track

from ..degrade import LADDERS
from ..plan import PlannedSet, add_sets, run_id_for
from ..splits import split_prompts
from .common import build_command, fresh_folder, load_pool_image, read_pool, save_grey, write_images_csv

log = logging.getLogger(__name__)
AXIS = "fidelity"
ORIGINAL = "original"
COLLAPSE = "collapse"
DEFAULT_COLLAPSE = (8, 4, 2, 1)


def set_id(control: str, level: int) -> str:
    return f"{AXIS}-{control}" if control == ORIGINAL else f"{AXIS}-{control}-{level}"


def holdout_sample(out: Path, pool, n: int, seed: int):
    """At most n holdout prompts (a seeded choice when the holdout is larger), in prompt_id order."""
    holdout = split_prompts(out, pool, "holdout")
    if len(holdout) > n:
        keep = np.sort(np.random.default_rng([seed, 1]).choice(len(holdout), n, replace=False))
        holdout = holdout.iloc[keep]
    return holdout.sort_values("prompt_id").reset_index(drop=True)


def build(
    pool_prompts: Path,
    pool_root: Path,
    out: Path,
    seed: int,
    n: int,
    max_side: int | None,
    ladders: tuple[str, ...],
    collapse: tuple[int, ...],
) -> list[PlannedSet]:
    """Write every fidelity set under `out` and its rows into out/plan.csv; returns the planned sets."""
    pool = read_pool(pool_prompts)
    holdout = holdout_sample(out, pool, n, seed)
    ids = holdout["prompt_id"].tolist()
    too_big = [k for k in collapse if k >= len(ids)]
    if too_big:
        raise BadInputError(
            f"--collapse {too_big[0]}: a collapsed set needs fewer distinct images than the {len(ids)} holdout "
            "images (k = the holdout's size is the original set)"
        )
    images = [
        load_pool_image(pool_root, row, max_side)
        for row in track(holdout.to_dict("records"), desc="validate: holdout images", unit="img")
    ]
    planned = [_write_set(out, ORIGINAL, 0, "original", ids, images, f"{len(ids)} holdout images")]
    for index, name in enumerate(ladders):
        ladder = LADDERS[name]
        for level, strength in enumerate(ladder.strengths, start=1):
            degraded = [
                ladder.apply(grey, strength, np.random.default_rng([seed, index, level, i]))
                for i, grey in enumerate(images)
            ]
            planned.append(_write_set(out, name, level, ladder.level_label(level), ids, degraded, f"{name} ladder"))
    for level, k in enumerate(sorted(set(collapse), reverse=True), start=1):
        repeated = [images[i % k] for i in range(len(ids))]
        note = f"{k} distinct holdout images repeated to {len(ids)}"
        planned.append(_write_set(out, COLLAPSE, level, f"k={k}", ids, repeated, note))
    add_sets(out, planned)
    return planned


def _write_set(out: Path, control: str, level: int, label: str, ids, images, note: str) -> PlannedSet:
    sid = set_id(control, level)
    folder = fresh_folder(out / sid)
    files = [save_grey(grey, folder / "images" / f"{pid}.png") for pid, grey in zip(ids, images, strict=True)]
    write_images_csv(folder, ids, files)
    log.info("validate: wrote %s (%s, %d images)", sid, label, len(ids))
    return PlannedSet(sid, AXIS, control, level, label, run_id_for(sid), note=note)


@build_command(
    "fidelity",
    "Holdout images at every level of the degradation ladders, mode-collapsed sets and the holdout itself, each "
    "as OUT/<set_id>/images.csv for `chexbench-generate import --csv`; the split must exist (chexbench-validate "
    "split).",
)
@click.option(
    "-n", "--n", "n", type=click.IntRange(min=4), default=20, help="Holdout images per set (a seeded sample if more)."
)
@click.option(
    "--max-side", type=click.IntRange(min=16), default=512, help="Longer side of the set images (larger ones shrink)."
)
@click.option(
    "--ladder",
    "ladders",
    type=click.Choice(list(LADDERS)),
    multiple=True,
    help="Degradations to build (repeat) [default: all].",
)
@click.option(
    "--collapse",
    type=click.IntRange(min=1),
    multiple=True,
    help=f"Distinct images of a mode-collapsed set (repeat) [default: {', '.join(map(str, DEFAULT_COLLAPSE))}].",
)
def command(pool_prompts, pool_root, out, seed, n, max_side, ladders, collapse):
    planned = build(
        pool_prompts, pool_root, out, seed, n, max_side, ladders or tuple(LADDERS), collapse or DEFAULT_COLLAPSE
    )
    for planned_set in planned:
        click.echo(f"{planned_set.set_id}\t{planned_set.run_id}")
