"""Subsets to evaluate: `all`, or one per CheXpert label (real label == 1; synthetic images inherit their prompt's
labels through images.prompt_id, never by matching prompt strings), plus the prompt of every row for the bootstrap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.errors import BadInputError
from chexbench_schema import CHEXPERT_LABELS, read_table

from .inputs import FeatureSet

ALL = "all"


def _examples(values) -> str:
    values = sorted(values)
    return ", ".join(map(str, values[:3])) + (", ..." if len(values) > 3 else "")


@dataclass
class Catalogue:
    """Labels by prompt and the prompt of each synthetic image (None where the table was not given)."""

    prompts: pd.DataFrame | None
    synth_prompt: dict[str, str] | None

    def unit(self, fs: FeatureSet) -> np.ndarray:
        """The bootstrap unit of each row: its prompt where known, else the image itself."""
        if fs.source == "real":
            return fs.ids
        if self.synth_prompt is None:
            return np.array([f"image:{i}" for i in fs.ids], dtype=object)
        return np.array([self.synth_prompt[i] for i in fs.ids], dtype=object)

    @property
    def paired(self) -> bool:
        return self.synth_prompt is not None


def build_catalogue(
    prompts: Path | None, images: Path | None, real: list[FeatureSet], synth: list[FeatureSet]
) -> Catalogue:
    """Read and cross-check the prompts and images tables against the embeddings."""
    table = read_table(prompts, "prompts").set_index("prompt_id") if prompts is not None else None
    synth_prompt = None
    if table is not None:
        for fs in real:
            missing = set(fs.ids) - set(table.index)
            if missing:
                raise BadInputError(
                    f"{fs.path}: {len(missing)} real image_id(s) are not prompt_ids of {prompts} "
                    f"(e.g. {_examples(missing)}); real embeddings must come from that prompts table"
                )
    if images is not None:
        frame = read_table(images, "images")
        synth_prompt = dict(zip(frame["image_id"], frame["prompt_id"], strict=True))
        for fs in synth:
            unknown = set(fs.ids) - synth_prompt.keys()
            if unknown:
                raise BadInputError(
                    f"{fs.path}: {len(unknown)} synthetic image_id(s) are not in {images} (e.g. {_examples(unknown)})"
                )
            lacking = synth_prompt.keys() - set(fs.ids)
            if lacking:
                raise BadInputError(
                    f"{fs.path}: {len(lacking)} image(s) of {images} have no embedding (e.g. "
                    f"{_examples(lacking)}); an image that failed to decode stops chexbench-embed, so "
                    "re-run embed on this images table or pass the subset that was embedded"
                )
        if table is not None:
            orphans = set(frame["prompt_id"]) - set(table.index)
            if orphans:
                raise BadInputError(
                    f"{images}: {len(orphans)} prompt_id(s) are not in {prompts} "
                    f"(e.g. {_examples(orphans)}); synthetic images inherit labels from that table"
                )
    return Catalogue(table, synth_prompt)


@dataclass
class Group:
    """One subset: `all`, or the images positive for one label."""

    name: str
    real_ids: frozenset | None = None  # None: every row
    synth_ids: frozenset | None = None

    def rows(self, fs: FeatureSet) -> np.ndarray:
        ids = self.real_ids if fs.source == "real" else self.synth_ids
        if ids is None:
            return np.arange(len(fs.ids))
        return np.flatnonzero(np.isin(fs.ids, list(ids)))


def label_groups(catalogue: Catalogue, labels: tuple[str, ...]) -> list[Group]:
    """One group per label: real prompts with label == 1 and the synthetic images generated from them."""
    if catalogue.prompts is None or catalogue.synth_prompt is None:
        raise BadInputError(
            "conditional mode needs --prompts (labels of the real set) and --images (the prompt of "
            "every synthetic image)"
        )
    unknown = [name for name in labels if name not in CHEXPERT_LABELS]
    if unknown:
        known = ", ".join(CHEXPERT_LABELS)
        raise BadInputError(f"unknown pathology {', '.join(map(repr, unknown))}; use one of {known}")
    groups = []
    for name in labels:
        positive = frozenset(catalogue.prompts.index[catalogue.prompts[name].fillna(0).to_numpy() == 1])
        synth = frozenset(i for i, p in catalogue.synth_prompt.items() if p in positive)
        groups.append(Group(name, positive, synth))
    return groups
