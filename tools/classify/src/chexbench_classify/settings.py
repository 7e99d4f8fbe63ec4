"""The training sets of each setting, built from the real TRAIN rows (after a patient-disjoint validation split)
and their synthetic twins (the image generated from the same prompt).

CheXGenBench's four: all_original (real), all_synthetic, mixed (a seeded half of the studies swapped for their
synthetic twin), augmented (real + synthetic). Two more: pretrain_synthetic (synthetic first, then real) and
duplicate_real (augmented's size, the synthetic half replaced by duplicated real images: the control that tells a
gain from more data apart from a gain from the generator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from .choices import SETTINGS

# checkpoint selection of a training phase: the rule's name -> what it does (the metrics table and the README say it)
RULES = {
    "real-validation": "best validation macro-AUROC on the real validation split",
    "held-out-synthetic": "best validation macro-AUROC on the held-out synthetic twins of the validation prompts, "
    "no real image",
    "last-epoch": "the last epoch of the fixed schedule, no validation",
}


def selection_rule(frame: pd.DataFrame, synthetic_selection: str) -> str:
    """How a phase picks its checkpoint: on the real validation split when it trains on any real image, else by the
    synthetic-only rule (--synthetic-selection), so that a synthetic-only phase never sees a real label."""
    return synthetic_selection if (frame["source"] == "synthetic").all() else "real-validation"


def validation_split(real: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) of the real rows, patient-disjoint (a row without a patient id is its own patient)."""
    groups = real["patient_id"].fillna("row:" + real["prompt_id"]).to_numpy()
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train_idx, val_idx = next(splitter.split(real, groups=groups))
    return real.iloc[np.sort(train_idx)], real.iloc[np.sort(val_idx)]


def phases(setting: str, real: pd.DataFrame, synth: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
    """The training frame(s) of a setting, in order (two for pretrain_synthetic). `real` and `synth` carry `file`,
    `prompt_id` and the labels; `synth` holds at most one twin per real prompt, none for the validation prompts."""
    twins = synth[synth["prompt_id"].isin(real["prompt_id"])]
    tag = {"real": real.assign(source="real"), "synthetic": twins.assign(source="synthetic")}
    if setting == "all_original":
        return [tag["real"]]
    if setting == "all_synthetic":
        return [tag["synthetic"]]
    if setting == "augmented":
        return [pd.concat([tag["real"], tag["synthetic"]], ignore_index=True)]
    if setting == "pretrain_synthetic":
        return [tag["synthetic"], tag["real"]]
    rng = np.random.default_rng(seed)
    if setting == "mixed":
        ids = real["prompt_id"].unique()
        swapped = set(rng.choice(ids, size=len(ids) // 2, replace=False)) & set(twins["prompt_id"])
        kept = tag["real"][~tag["real"]["prompt_id"].isin(swapped)]
        return [pd.concat([kept, tag["synthetic"][tag["synthetic"]["prompt_id"].isin(swapped)]], ignore_index=True)]
    if setting == "duplicate_real":
        extra = tag["real"].iloc[rng.choice(len(real), size=len(twins), replace=len(twins) > len(real))]
        return [pd.concat([tag["real"], extra.assign(source="real-duplicate")], ignore_index=True)]
    raise ValueError(f"unknown setting {setting!r}; one of {', '.join(SETTINGS)}")
