"""Load and cross-check every input of `privacy run` before anything is computed or written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.errors import BadInputError
from chexbench_common.paths import resolve_under
from chexbench_schema import read_embeddings, read_metadata, read_table

from .ladder import NAMES

# embeddings metadata that must agree between every table compared in one space
MATCHING_KEYS = ("extractor", "weights_sha256", "preprocessing")


@dataclass
class Space:
    """Vectors of one embedding space keyed by id (prompt_id for real images, image_id for synthetic ones)."""

    path: Path
    ids: np.ndarray
    vectors: np.ndarray
    meta: dict

    def take(self, ids, what: str) -> np.ndarray:
        """Rows for `ids` in that order; a missing id is an error that names the table and the id."""
        index = pd.Index(self.ids)
        pos = index.get_indexer(pd.Index(ids))
        if (pos < 0).any():
            missing = [i for i, p in zip(ids, pos, strict=True) if p < 0]
            raise BadInputError(
                f"{self.path}: no embedding for {len(missing)} {what} (first: {missing[0]}); "
                "embed those images with chexbench-embed (same extractor) first"
            )
        return self.vectors[pos]


def load_space(paths: list[Path], source: str, extractor: str) -> Space:
    """One or more embeddings tables of the same extractor and weights, rows of `source` only, unioned."""
    ids, vectors, meta = [], [], None
    for path in paths:
        if not Path(path).is_file():
            raise BadInputError(f"{path}: embeddings table not found; run chexbench-embed first or pass its path")
        emb = read_embeddings(path)
        extra = emb.metadata.get("extra", {})
        if extra.get("extractor") != extractor:
            raise BadInputError(
                f"{path}: embeddings of extractor {extra.get('extractor')!r}, expected {extractor!r} "
                "(--extractor); every table compared in one space must come from the same extractor"
            )
        if extra.get("non_finite") == "allowed":
            raise BadInputError(f"{path}: vectors may hold NaN/inf ({extractor}); privacy needs finite embeddings")
        rows = emb.frame["source"] == source
        if not rows.any():
            raise BadInputError(f"{path}: no {source} rows; pass the table that holds the {source} embeddings")
        if meta is not None:
            _same_space(path, meta, extra, vectors[0].shape[1], emb.vectors.shape[1])
        meta = meta or extra
        ids.append(emb.frame["image_id"].to_numpy(dtype=object)[rows.to_numpy()])
        vectors.append(emb.vectors[rows.to_numpy()])
    all_ids = np.concatenate(ids)
    unique, first = np.unique(all_ids, return_index=True)
    order = np.sort(first)
    return Space(Path(paths[0]), all_ids[order], np.concatenate(vectors)[order], meta or {})


def _same_space(path: Path, meta: dict, extra: dict, dim: int, other_dim: int) -> None:
    for key in MATCHING_KEYS:
        if meta.get(key) != extra.get(key):
            raise BadInputError(
                f"{path}: {key} {extra.get(key)!r} differs from the other tables' {meta.get(key)!r}; "
                "embed every set with the same extractor and weights"
            )
    if dim != other_dim:
        raise BadInputError(f"{path}: vectors are {other_dim}-d, the other tables' {dim}-d")


def route(paths: list[Path], extractors: list[str], option: str) -> dict[str, list[Path]]:
    """Embeddings tables given with `option`, grouped by the extractor their metadata names (one of `extractors`)."""
    out: dict[str, list[Path]] = {e: [] for e in extractors}
    for path in paths:
        if not Path(path).is_file():
            raise BadInputError(f"{path}: embeddings table not found; run chexbench-embed first or pass its path")
        name = read_metadata(path).get("extra", {}).get("extractor")
        if name not in out:
            raise BadInputError(
                f"{path} ({option}): embeddings of extractor {name!r}, expected {' or '.join(map(repr, extractors))} "
                "(--extractor); every table must belong to one of the audit's spaces"
            )
        out[name].append(Path(path))
    return out


def load_strengths(path: Path, control: pd.DataFrame) -> np.ndarray:
    """The ladder strength of every positive-control image, from the sample's augmentations record."""
    if not Path(path).is_file():
        raise BadInputError(f"{path}: the positive control's augmentations record is missing; run `privacy sample`")
    recipes = pd.read_csv(path)
    if "strength" not in recipes:
        raise BadInputError(
            f"{path}: no strength column (a sample written before the control ladder); run `privacy sample --force`"
        )
    strengths = recipes.set_index("image_id")["strength"]
    missing = sorted(set(control["image_id"]) - set(strengths.index))
    if missing:
        raise BadInputError(f"{path}: no augmentation recorded for control image {missing[0]}; run `privacy sample`")
    unknown = sorted(set(strengths) - set(NAMES))
    if unknown:
        raise BadInputError(f"{path}: unknown strength {unknown[0]!r} (known: {', '.join(NAMES)})")
    return strengths.loc[control["image_id"]].to_numpy()


def check_same_space(a: Space, b: Space, what: str) -> None:
    """Two spaces about to be compared: same extractor, weights, preprocessing and dimension."""
    _same_space(b.path, a.meta, b.meta, a.vectors.shape[1], b.vectors.shape[1])


def _read_filled(path: Path, kind: str, what: str, hint: str) -> pd.DataFrame:
    """A table of the contract that exists and has rows (else one line naming it and what to do)."""
    if not Path(path).is_file():
        raise BadInputError(f"{path}: {what} {kind} table not found; {hint}")
    table = read_table(path, kind)
    if table.empty:
        raise BadInputError(f"{path}: the {what} {kind} table is empty; {hint}")
    return table


def load_prompts(path: Path, real_root: Path, what: str) -> pd.DataFrame:
    """A prompts table whose rows all have a source image under real_root; adds `file` and `patient`."""
    table = _read_filled(path, "prompts", what, f"the audit needs {what} images")
    no_image = table["image_path"].isna().to_numpy()
    if no_image.any():
        row = int(np.flatnonzero(no_image)[0])
        raise BadInputError(
            f"{path} row {row + 1}: prompt {table['prompt_id'].iloc[row]} has no image_path; {what} rows need "
            "their real image (drop such rows)"
        )
    table = table.copy()
    table["file"] = [
        resolve_under(real_root, p, where=f"{path} row {i + 1}") for i, p in enumerate(table["image_path"])
    ]
    missing = [i for i, f in enumerate(table["file"]) if not f.is_file()]
    if missing:
        i = missing[0]
        raise BadInputError(
            f"{path} row {i + 1}: source image {table['file'].iloc[i]} of prompt {table['prompt_id'].iloc[i]} is "
            f"missing ({len(missing)} missing in all); check --real-root"
        )
    # images without a patient id count as their own patient (recorded in the manifest)
    table["patient"] = table["patient_id"].where(table["patient_id"].notna(), "image:" + table["prompt_id"])
    return table


def check_disjoint(train: pd.DataFrame, holdout: pd.DataFrame, train_path: Path, holdout_path: Path) -> str:
    """The holdout must share no image and no patient with the training pool; returns how it was checked."""
    shared_images = set(train["prompt_id"]) & set(holdout["prompt_id"])
    if shared_images:
        raise BadInputError(
            f"{holdout_path}: {len(shared_images)} holdout prompt(s) are also in the training pool {train_path} "
            f"(first: {sorted(shared_images)[0]}); the holdout must be disjoint from TRAIN"
        )
    known = holdout["patient_id"].notna() & True
    shared = set(train["patient_id"].dropna()) & set(holdout.loc[known, "patient_id"])
    if shared:
        raise BadInputError(
            f"{holdout_path}: {len(shared)} patient(s) are in both the holdout and the training pool "
            f"(first: {sorted(shared)[0]}); use a patient-disjoint holdout (e.g. the TEST split)"
        )
    if holdout["patient_id"].isna().any() or train["patient_id"].isna().any():
        return "image-disjoint (patient ids missing: patient disjointness not checked)"
    return "patient-disjoint"


def load_images(path: Path, root: Path, what: str) -> pd.DataFrame:
    """An images table with its files resolved under root (missing files are an error)."""
    table = _read_filled(path, "images", what, "run the step that writes it first").copy()
    table["file"] = [resolve_under(root, p, where=f"{path} row {i + 1}") for i, p in enumerate(table["path"])]
    missing = [i for i, f in enumerate(table["file"]) if not f.is_file()]
    if missing:
        i = missing[0]
        raise BadInputError(f"{path} row {i + 1}: image file {table['file'].iloc[i]} is missing; check --images-root")
    return table


def images_root(path: Path, given: Path | None) -> Path:
    """--images-root, else the table's images_root metadata (relative to the table), else the table's folder."""
    if given is not None:
        return given
    recorded = read_metadata(path).get("extra", {}).get("images_root")
    return (Path(path).parent / recorded) if recorded else Path(path).parent
