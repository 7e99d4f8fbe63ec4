"""Test data for the fidelity tests: invented prompts with labels, synthetic images per prompt, embeddings tables."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from chexbench_schema import CHEXPERT_LABELS, write_embeddings, write_table

WEIGHTS = {"inception": "a" * 64, "raddino": "b" * 64, "inception-logits": "a" * 64}
PREPROCESSING = {"resize": "squash 299", "interpolation": "bicubic"}


def correlated(rng: np.random.Generator, n: int, d: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Features with a low-rank structure plus noise (float32), like encoder outputs."""
    basis = np.random.default_rng(99).standard_normal((max(2, d // 4), d))
    z = rng.standard_normal((n, basis.shape[0])) * scale
    return (z @ basis / np.sqrt(basis.shape[0]) + 0.3 * rng.standard_normal((n, d)) + shift + 1.0).astype(np.float32)


def write_emb(path: Path, ids, vectors: np.ndarray, source: str, extractor: str, **meta) -> Path:
    frame = pd.DataFrame({"image_id": list(ids), "source": source, "extractor": extractor})
    weights = meta.pop("weights_sha256", WEIGHTS.get(extractor, "c" * 64))
    return write_embeddings(
        frame,
        vectors,
        path,
        producer="test",
        extractor=extractor,
        weights_sha256=weights,
        preprocessing=meta.pop("preprocessing", PREPROCESSING),
        extra=meta,
    )


def poison(path: Path, row: int, value: float = np.nan) -> Path:
    """Rewrite an embeddings table with one non-finite value, keeping its chexbench metadata."""
    table = pq.read_table(path)
    vectors = np.stack(table.column("vector").to_pylist()).astype(np.float32)
    vectors[row, 0] = value
    col = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    pq.write_table(table.set_column(table.column_names.index("vector"), "vector", col), path)
    return path


def prompts_table(path: Path, labels: np.ndarray, texts: list[str] | None = None) -> list[str]:
    """A prompts table with one prompt per row of `labels` (n, 14) in {1, 0, -1, nan}; returns the prompt ids."""
    ids = [f"p{i:016x}" for i in range(len(labels))]
    rows = []
    for i, pid in enumerate(ids):
        row = {
            "split": "test",
            "prompt_id": pid,
            "prompt": texts[i] if texts else f"finding number {i}",
            "patient_id": None,
            "study_id": None,
            "id": None,
            "image_path": f"files/p10/{i}.jpg",
            "view": "PA",
        }
        row.update(
            {name: None if np.isnan(labels[i, j]) else int(labels[i, j]) for j, name in enumerate(CHEXPERT_LABELS)}
        )
        rows.append(row)
    write_table(pd.DataFrame(rows), path, "prompts", producer="test")
    return ids


def images_table(path: Path, prompt_ids: list[str], per_prompt: int) -> list[str]:
    """An images table with `per_prompt` synthetic images of every prompt; returns the image ids."""
    rows = []
    for pid in prompt_ids:
        for s in range(per_prompt):
            image_id = f"{pid}-{s}"
            rows.append(
                {
                    "image_id": image_id,
                    "prompt_id": pid,
                    "model": "tiny",
                    "path": f"img/{image_id}.png",
                    "seed": s,
                    "sample_index": s,
                    "width": 64,
                    "height": 64,
                    "steps": 2,
                    "guidance": 1.0,
                    "dtype": "float32",
                    "sha256": hashlib.sha256(image_id.encode()).hexdigest(),
                }
            )
    write_table(pd.DataFrame(rows), path, "images", producer="test")
    return [r["image_id"] for r in rows]


@dataclass
class Dataset:
    root: Path
    prompts: Path
    images: Path
    labels: np.ndarray
    prompt_ids: list[str]
    image_ids: list[str]
    real: dict[str, Path]
    synth: dict[str, Path]
    vectors: dict[str, tuple[np.ndarray, np.ndarray]]

    def args(self, *extractors: str) -> list[str]:
        out = []
        for e in extractors or tuple(self.real):
            out += ["--real", str(self.real[e]), "--synth", str(self.synth[e])]
        return out


def make_dataset(tmp_path: Path) -> Dataset:
    """60 prompts with random labels (Fracture never positive), 2 synthetic images each, inception d=24, raddino d=8."""
    rng = np.random.default_rng(7)
    n = 60
    labels = rng.choice([1.0, 0.0, -1.0, np.nan], size=(n, len(CHEXPERT_LABELS)), p=[0.35, 0.35, 0.15, 0.15])
    labels[:, CHEXPERT_LABELS.index("Fracture")] = 0
    prompt_ids = prompts_table(tmp_path / "prompts.parquet", labels)
    image_ids = images_table(tmp_path / "images.parquet", prompt_ids, 2)
    real, synth, vectors = {}, {}, {}
    for name, d in (("inception", 24), ("raddino", 8)):
        xr = correlated(rng, n, d)
        xs = correlated(rng, len(image_ids), d, shift=0.2, scale=1.2)
        real[name] = write_emb(tmp_path / f"real-{name}.parquet", prompt_ids, xr, "real", name)
        synth[name] = write_emb(tmp_path / f"synthetic-{name}.parquet", image_ids, xs, "synthetic", name)
        vectors[name] = (xr, xs)
    return Dataset(
        tmp_path,
        tmp_path / "prompts.parquet",
        tmp_path / "images.parquet",
        labels,
        prompt_ids,
        image_ids,
        real,
        synth,
        vectors,
    )
