"""The alignment axis: real images scored by `chexbench-align` against prompts whose fit is known.

Controls (level): `matched` 0 = each image under its own report; `other` 1 = each image under the report of another
image whose findings share no CheXpert label with its own (device and pleural-thickening qualifiers aside: another
pathology); `shuffled` 2 = the sample's own reports dealt out again so that no image keeps its own (a seeded
derangement). A scorer that reads the images orders them matched > other >= shuffled. On the embedded default the
pool's findings are invented text that its pixels do not show, and the scorer is a random stand-in: the relation is
computed and shown there, judged only on real images and weights (MIMIC and BioViL-T).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
import numpy as np
import pandas as pd
from chexbench_common.errors import BadInputError
from chexbench_schema import CHEXPERT_LABELS

from ..plan import PlannedSet, add_sets, run_id_for
from ..splits import split_prompts
from .common import build_command, fresh_folder, load_pool_image, read_pool, save_grey, write_images_csv

log = logging.getLogger(__name__)
AXIS = "alignment"
CONTROLS = ("matched", "other", "shuffled")
NOT_PATHOLOGY = ("Support Devices", "Pleural Other")  # the pool prompts' qualifiers, not their finding


def findings(row) -> frozenset[str]:
    """The positive CheXpert labels of a prompt that describe its pathology."""
    return frozenset(
        label for label in CHEXPERT_LABELS if label not in NOT_PATHOLOGY and pd.notna(row[label]) and row[label] == 1
    )


def other_pathology(sample: pd.DataFrame, pool: pd.DataFrame, rng: np.random.Generator) -> list[str]:
    """For each sampled prompt, a seeded choice among the pool's prompts with no pathology label in common (and a
    pathology label set of their own)."""
    keys = [findings(row) for row in pool.to_dict("records")]
    chosen = []
    for row in sample.to_dict("records"):
        own = findings(row)
        candidates = [i for i, key in enumerate(keys) if key and key != own and not key & own]
        if not candidates:
            raise BadInputError(f"prompt {row['prompt_id']}: no pool prompt of another pathology to pair it with")
        chosen.append(pool["prompt_id"].iloc[candidates[int(rng.integers(len(candidates)))]])
    return chosen


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded permutation that moves every index (n >= 2)."""
    while True:
        order = rng.permutation(n)
        if not (order == np.arange(n)).any():
            return order


def build(
    pool_prompts: Path, pool_root: Path, out: Path, seed: int, n: int, max_side: int, split: str
) -> list[PlannedSet]:
    pool = read_pool(pool_prompts)
    part = split_prompts(out, pool, split)
    if len(part) < 2:
        raise BadInputError(f"the {split!r} split has {len(part)} image(s); alignment needs at least 2")
    rng = np.random.default_rng([seed, 13])
    sample = part.iloc[np.sort(rng.choice(len(part), min(n, len(part)), replace=False))].reset_index(drop=True)
    own = sample["prompt_id"].tolist()
    prompts = {
        "matched": own,
        "other": other_pathology(sample, pool, rng),
        "shuffled": [own[i] for i in derangement(len(own), rng)],
    }
    images = [load_pool_image(pool_root, row, max_side) for row in sample.to_dict("records")]
    planned = []
    for level, control in enumerate(CONTROLS):
        sid = f"{AXIS}-{control}"
        folder = fresh_folder(out / sid)
        files = [save_grey(grey, folder / "images" / f"{pid}.png") for pid, grey in zip(own, images, strict=True)]
        write_images_csv(folder, prompts[control], files)
        note = f"{len(own)} {split} images under {control} prompts"
        planned.append(PlannedSet(sid, AXIS, control, level, control, run_id_for(sid), note=note))
    add_sets(out, planned)
    log.info("validate: wrote the alignment sets (%d images each)", len(own))
    return planned


@build_command(
    "alignment",
    "Real images under their own prompts (matched), prompts of another pathology (other) and each other's prompts "
    "(shuffled), for `chexbench-generate import --prompts <pool prompts>` and `chexbench-align run`.",
)
@click.option("-n", "--n", "n", type=click.IntRange(min=2), default=16, show_default=True, help="Images per set.")
@click.option("--max-side", type=click.IntRange(min=16), default=512, show_default=True, help="Longer side.")
@click.option("--split", default="holdout", show_default=True, help="Split the images come from.")
def command(pool_prompts, pool_root, out, seed, n, max_side, split):
    for planned_set in build(pool_prompts, pool_root, out, seed, n, max_side, split):
        click.echo(f"{planned_set.set_id}\t{planned_set.run_id}")
