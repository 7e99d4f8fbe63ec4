"""The pool's patient-disjoint split, made once and shared by every axis: DIR/splits.csv (prompt_id, patient_id,
split) and one prompts table per split, DIR/prompts_<split>.parquet, for the stages to read.

Patients, not images, are shuffled (seeded) and dealt out one at a time to the split furthest below its share of
images, so no patient has images on two sides and the splits' sizes follow the requested fractions as closely as
whole patients allow. A prompt without a patient id counts as its own patient (the demo's images have none).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError
from chexbench_common.options import FOLDER_NAME
from chexbench_schema import read_table, write_table

from . import __version__

log = logging.getLogger(__name__)
SPLITS = "splits.csv"
DEFAULT_FRACTIONS = {"reference": 0.5, "holdout": 0.5}


def prompts_path(out: Path, split: str) -> Path:
    return out / f"prompts_{split}.parquet"


def parse_fractions(values: tuple[str, ...]) -> dict[str, float]:
    """`NAME=FRACTION` pairs (fractions > 0, summing to 1); the default reference/holdout halves."""
    if not values:
        return dict(DEFAULT_FRACTIONS)
    fractions = {}
    for value in values:
        name, _, number = value.partition("=")
        try:
            fraction = float(number)
        except ValueError:
            fraction = -1.0
        if not FOLDER_NAME.fullmatch(name) or not 0 < fraction <= 1 or name in fractions:
            raise BadInputError(f"--split {value!r}: give NAME=FRACTION once per split, 0 < FRACTION <= 1")
        fractions[name] = fraction
    if abs(sum(fractions.values()) - 1) > 1e-9:
        raise BadInputError(f"--split fractions sum to {sum(fractions.values()):g}, not 1")
    return fractions


def assign(prompts: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """prompt_id, patient_id, split for every prompt: whole patients dealt to the split most below its share."""
    patient = prompts["patient_id"].where(prompts["patient_id"].notna(), "prompt:" + prompts["prompt_id"])
    sizes = patient.value_counts().sort_index()
    order = np.random.default_rng(seed).permutation(len(sizes))
    names = list(fractions)
    counts = dict.fromkeys(names, 0)
    chosen = {}
    for i in order:
        key, size = sizes.index[i], int(sizes.iloc[i])
        deficit = [fractions[n] * (sum(counts.values()) + size) - counts[n] for n in names]
        name = names[int(np.argmax(deficit))]
        counts[name] += size
        chosen[key] = name
    return pd.DataFrame(
        {
            "prompt_id": prompts["prompt_id"],
            "patient_id": prompts["patient_id"].fillna(""),
            "split": patient.map(chosen),
        }
    )


def split_pool(pool_prompts: Path, out: Path, fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """Write splits.csv and the per-split prompts tables into `out`; returns the split table."""
    prompts = read_table(pool_prompts, "prompts")
    if len(prompts) < len(fractions):
        raise BadInputError(f"{pool_prompts}: {len(prompts)} prompt(s) cannot fill {len(fractions)} splits")
    missing = int(prompts["patient_id"].isna().sum())
    if missing:
        log.warning(
            "%s: %d of %d prompts have no patient_id; each counts as its own patient",
            pool_prompts,
            missing,
            len(prompts),
        )
    table = assign(prompts, fractions, seed)
    empty = [name for name in fractions if not (table["split"] == name).any()]
    if empty:
        raise BadInputError(f"{pool_prompts}: too few patients for split(s) {', '.join(empty)}; lower their number")
    out.mkdir(parents=True, exist_ok=True)
    for name in fractions:
        part = prompts[table["split"].to_numpy() == name]
        write_table(
            part,
            prompts_path(out, name),
            "prompts",
            producer=f"chexbench-validate {__version__}",
            extra={"validate_split": name, "pool": str(pool_prompts), "seed": seed},
        )
    with atomic_path(out / SPLITS) as tmp:
        table.to_csv(tmp, index=False)
    return table


def read_splits(out: Path) -> pd.DataFrame:
    path = out / SPLITS
    if not path.is_file():
        raise BadInputError(f"{path}: no split of the pool yet; run `chexbench-validate split` first")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def split_prompts(out: Path, pool: pd.DataFrame, split: str) -> pd.DataFrame:
    """The pool's prompts of one split (in splits.csv order); an error when the split is empty or unknown."""
    table = read_splits(out)
    ids = table.loc[table["split"] == split, "prompt_id"]
    if ids.empty:
        known = ", ".join(sorted(set(table["split"])))
        raise BadInputError(f"{out / SPLITS}: no prompt in split {split!r} (splits: {known})")
    unknown = sorted(set(ids) - set(pool["prompt_id"]))
    if unknown:
        raise BadInputError(
            f"{out / SPLITS}: {len(unknown)} prompt_id(s) of split {split!r} are not in the pool (e.g. {unknown[0]}); "
            "split this pool again"
        )
    return pool.set_index("prompt_id").loc[ids.to_list()].reset_index()
