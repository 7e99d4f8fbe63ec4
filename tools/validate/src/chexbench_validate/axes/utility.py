"""The utility axis: planted-signal data whose answer is known. A classifier trained only on synthetic images
(`chexbench-classify --setting all_synthetic`) and tested on real ones can score on a label only as far as the
synthetic images carry that label's signal.

The pool's labels are not in its pixels, so the signal is planted: a bright square (side `--marker` of the image,
upper left) marks `--label` in every real image of the train and test splits (drawn where the label is 1, nowhere
else); these planted real images and their prompts tables go to OUT/utility-real/ for the stage's --real-root,
--train-prompts and --test-prompts. Each train prompt's synthetic twin is its pool image with the square drawn by the
control's rule:

- `intact` (level 0): where the label is 1, as in the real images -> AUROC on the real test images well above 0.5;
- `absent` (level 1): on a seeded half of the positive and half of the negative images (no correlation with the
  label in the twins) -> AUROC 0.5 in expectation over training seeds (one seed's classifier still responds to the
  square in a direction of its own, so the relations read the mean over several seeds);
- `reversed` (level 2): where the label is not 1 -> AUROC well below 0.5.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
import numpy as np
import pandas as pd
from chexbench_common.errors import BadInputError
from chexbench_schema import CHEXPERT_LABELS, write_table

from .. import __version__
from ..plan import PlannedSet, add_sets, run_id_for
from ..splits import split_prompts
from .common import build_command, fresh_folder, load_pool_image, read_pool, save_grey, write_images_csv

log = logging.getLogger(__name__)
AXIS = "utility"
REAL = "utility-real"
CONTROLS = ("intact", "absent", "reversed")
DEFAULT_LABEL = "Support Devices"
MARKER_OFFSET = 0.2  # the square's top-left corner, as a fraction of the side


def plant(grey: np.ndarray, marked: bool, side: float) -> np.ndarray:
    """The image with the bright square drawn (or not)."""
    if not marked:
        return grey
    out = grey.copy()
    h, w = out.shape
    top, left = int(h * MARKER_OFFSET), int(w * MARKER_OFFSET)
    out[top : top + max(1, int(h * side)), left : left + max(1, int(w * side))] = 1.0
    return out


def marks(control: str, positive: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where a control's twins carry the square."""
    if control == "intact":
        return positive
    if control == "reversed":
        return ~positive
    # half of the positives and half of the negatives, seeded: in the twins the square says nothing about the label
    drawn = np.zeros(len(positive), dtype=bool)
    for group in (np.flatnonzero(positive), np.flatnonzero(~positive)):
        drawn[rng.choice(group, len(group) // 2, replace=False)] = True
    return drawn


def _positive(prompts: pd.DataFrame, label: str, split: str) -> np.ndarray:
    positive = (prompts[label] == 1).fillna(False).to_numpy(dtype=bool)
    if positive.all() or not positive.any():
        raise BadInputError(f"--label {label!r}: the {split} split needs positive and negative images; pick another")
    return positive


def _planted_real(out: Path, pool_root: Path, split: str, prompts: pd.DataFrame, label: str, side: float, max_side):
    """The split's real images with the label's square, and its prompts table pointing at them."""
    folder = out / REAL
    positive = _positive(prompts, label, split)
    paths = []
    for row, marked in zip(prompts.to_dict("records"), positive, strict=True):
        grey = load_pool_image(pool_root, row, max_side)
        paths.append(save_grey(plant(grey, bool(marked), side), folder / "images" / f"{row['prompt_id']}.png"))
    table = prompts.assign(image_path=paths)
    write_table(
        table,
        folder / f"prompts_{split}.parquet",
        "prompts",
        producer=f"chexbench-validate {__version__}",
        extra={"validate_planted": label, "marker": side},
    )


def build(
    pool_prompts: Path,
    pool_root: Path,
    out: Path,
    seed: int,
    label: str,
    side: float,
    max_side: int,
    train_split: str,
    test_split: str,
) -> list[PlannedSet]:
    if label not in CHEXPERT_LABELS:
        raise BadInputError(f"--label {label!r} is not a CheXpert label ({', '.join(CHEXPERT_LABELS)})")
    pool = read_pool(pool_prompts)
    train = split_prompts(out, pool, train_split)
    test = split_prompts(out, pool, test_split)
    fresh_folder(out / REAL)
    _planted_real(out, pool_root, train_split, train, label, side, max_side)
    _planted_real(out, pool_root, test_split, test, label, side, max_side)
    positive = _positive(train, label, train_split)
    images = [load_pool_image(pool_root, row, max_side) for row in train.to_dict("records")]
    ids = train["prompt_id"].tolist()
    planned = []
    for level, control in enumerate(CONTROLS):
        drawn = marks(control, positive, np.random.default_rng([seed, 11, level]))
        folder = fresh_folder(out / f"{AXIS}-{control}")
        files = [
            save_grey(plant(grey, bool(m), side), folder / "images" / f"{pid}.png")
            for pid, grey, m in zip(ids, images, drawn, strict=True)
        ]
        write_images_csv(folder, ids, files)
        agree = float(np.mean(drawn == positive))
        note = f"square on {int(drawn.sum())} of {len(ids)} twins; agrees with {label} on {agree:.0%}"
        planned.append(
            PlannedSet(f"{AXIS}-{control}", AXIS, control, level, control, run_id_for(f"{AXIS}-{control}"), note=note)
        )
        log.info("validate: wrote %s-%s (%s)", AXIS, control, note)
    add_sets(out, planned)
    return planned


@build_command(
    "utility",
    "Planted-signal sets for `chexbench-classify --setting all_synthetic`: real train/test images with a square "
    "marking --label (OUT/utility-real/) and synthetic twins of the train prompts whose square keeps the signal "
    "(intact), carries none (absent) or reverses it (reversed).",
)
@click.option("--label", default=DEFAULT_LABEL, show_default=True, help="The CheXpert label the square marks.")
@click.option(
    "--marker", type=click.FloatRange(0.02, 0.5), default=0.15, show_default=True, help="Side of the square (share)."
)
@click.option("--max-side", type=click.IntRange(min=16), default=128, show_default=True, help="Side of the images.")
@click.option("--train-split", default="reference", show_default=True, help="Split of the training prompts.")
@click.option("--test-split", default="holdout", show_default=True, help="Split of the real test prompts.")
def command(pool_prompts, pool_root, out, seed, label, marker, max_side, train_split, test_split):
    planned = build(pool_prompts, pool_root, out, seed, label, marker, max_side, train_split, test_split)
    for planned_set in planned:
        click.echo(f"{planned_set.set_id}\t{planned_set.run_id}")
