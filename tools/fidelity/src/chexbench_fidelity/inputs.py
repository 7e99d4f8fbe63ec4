"""Load embeddings tables and pair real with synthetic by extractor, refusing anything that is not comparable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from chexbench_common.errors import BadInputError
from chexbench_common.hashing import sha256_file
from chexbench_schema import read_embeddings

# metadata that must agree between the real and the synthetic table of one extractor
MATCHING_KEYS = ("weights_sha256", "preprocessing", "compute_dtype")
LOGITS_SUFFIX = "-logits"
INCEPTION_CLASSES = (1008, 1000)  # the TF FID graph's output layer; torchvision's ImageNet classifier


@dataclass
class FeatureSet:
    """One embeddings table: ids, vectors (N, d) float32 and its extra metadata."""

    path: Path
    source: str
    extractor: str
    ids: np.ndarray
    vectors: np.ndarray
    meta: dict
    _sha256: str | None = None

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return self._sha256


def load_features(path: Path, source: str) -> FeatureSet:
    """Read one embeddings table whose rows must all be `source` (real or synthetic)."""
    emb = read_embeddings(path)
    meta = emb.metadata.get("extra", {})
    if len(emb.frame) == 0:
        raise BadInputError(f"{path}: the embeddings table is empty; fidelity metrics need samples")
    other = sorted(set(emb.frame["source"]) - {source})
    if other:
        raise BadInputError(f"{path}: given as {source} embeddings but has {', '.join(other)} rows")
    extractors = sorted(set(emb.frame["extractor"]))
    if extractors != [meta["extractor"]]:
        raise BadInputError(
            f"{path}: rows name extractor(s) {', '.join(extractors)} but the metadata says {meta['extractor']!r}"
        )
    return FeatureSet(
        Path(path), source, meta["extractor"], emb.frame["image_id"].to_numpy(dtype=object), emb.vectors, meta
    )


def _by_extractor(sets: list[FeatureSet], side: str) -> dict[str, FeatureSet]:
    out: dict[str, FeatureSet] = {}
    for fs in sets:
        if fs.extractor in out:
            raise BadInputError(
                f"two {side} embeddings tables for extractor {fs.extractor!r}: {out[fs.extractor].path} and {fs.path}"
            )
        out[fs.extractor] = fs
    return out


def pair_features(real: list[FeatureSet], synth: list[FeatureSet]) -> dict[str, tuple[FeatureSet, FeatureSet]]:
    """{extractor: (real, synthetic)}; each table needs a partner of the same extractor, weights and preprocessing."""
    if not real or not synth:
        raise BadInputError("fidelity needs at least one real and one synthetic embeddings table (--real, --synth)")
    reals, synths = _by_extractor(real, "real"), _by_extractor(synth, "synthetic")
    for name, fs in reals.items():
        if name not in synths:
            raise BadInputError(
                f"extractor mismatch: real embeddings {fs.path} are {name!r} but no synthetic table is "
                f"(synthetic: {', '.join(f'{s.extractor} ({s.path})' for s in synths.values())})"
            )
    for name, fs in synths.items():
        if name not in reals:
            raise BadInputError(
                f"extractor mismatch: synthetic embeddings {fs.path} are {name!r} but no real table is "
                f"(real: {', '.join(f'{r.extractor} ({r.path})' for r in reals.values())})"
            )
    pairs = {}
    for name in sorted(reals):
        r, s = reals[name], synths[name]
        if r.dim != s.dim:
            raise BadInputError(
                f"dimension mismatch for {name}: real {r.path} has d={r.dim}, synthetic {s.path} has d={s.dim}"
            )
        for key in MATCHING_KEYS:
            if key in r.meta and key in s.meta and r.meta[key] != s.meta[key]:
                raise BadInputError(
                    f"extractor mismatch for {name}: {key} differs between real {r.path} "
                    f"({r.meta[key]!r}) and synthetic {s.path} ({s.meta[key]!r})"
                )
        pairs[name] = (r, s)
    return pairs


def load_logits(path: Path) -> FeatureSet:
    """Synthetic classifier logits for the Inception Score; pool features are refused, also under a logits name:
    inception logits are 1008 (or 1000) wide, and logits that are all non-negative are ReLU-pooled features."""
    fs = load_features(path, "synthetic")
    if not fs.extractor.endswith(LOGITS_SUFFIX):
        raise BadInputError(
            f"{path}: Inception Score needs classifier logits (an embeddings table with extractor "
            f"'inception{LOGITS_SUFFIX}'), but this table holds {fs.extractor!r} features "
            f"(d={fs.dim}); IS on pool features is not an Inception Score"
        )
    if fs.extractor == f"inception{LOGITS_SUFFIX}" and fs.dim not in INCEPTION_CLASSES:
        raise BadInputError(
            f"{path}: {fs.extractor!r} vectors are {fs.dim} wide, but Inception logits have "
            f"{' or '.join(map(str, INCEPTION_CLASSES))} classes; this is not the output layer's logits"
        )
    if (fs.vectors >= 0).all():
        raise BadInputError(
            f"{path}: every {fs.extractor!r} value is non-negative, as pooled ReLU features are and classifier "
            "logits are not; IS on pool features is not an Inception Score"
        )
    return fs


def logits_note(pairs: dict[str, tuple[FeatureSet, FeatureSet]]) -> str:
    """Why IS is unavailable when no logits were given, from the inception table's own metadata where it says."""
    reason = pairs.get("inception", (None, None))[1]
    reason = reason.meta.get("logits") if reason is not None else None
    return (
        f"IS unavailable: no --synth-logits table given; inception embeddings say logits {reason}"
        if reason
        else "IS unavailable: no --synth-logits table given"
    )


def companion_tables(
    paths: list[Path], source: str, pairs: dict[str, tuple[FeatureSet, FeatureSet]], option: str
) -> dict[str, FeatureSet]:
    """Further embeddings tables by extractor (training images, prompt samples), each comparable with the run's real
    table of its extractor (same dimension, weights, preprocessing and compute dtype)."""
    out = _by_extractor([load_features(p, source) for p in paths], f"{option}")
    for name, fs in out.items():
        if name not in pairs:
            raise BadInputError(
                f"{option} {fs.path}: extractor {name!r} has no --real/--synth pair (pairs: {', '.join(pairs)})"
            )
        real = pairs[name][0]
        if fs.dim != real.dim:
            raise BadInputError(
                f"{option} {fs.path}: d={fs.dim}, but the real {name} table {real.path} has d={real.dim}"
            )
        for key in MATCHING_KEYS:
            if key in fs.meta and key in real.meta and fs.meta[key] != real.meta[key]:
                raise BadInputError(
                    f"extractor mismatch for {name}: {key} differs between {option} {fs.path} ({fs.meta[key]!r}) "
                    f"and real {real.path} ({real.meta[key]!r})"
                )
    return out
