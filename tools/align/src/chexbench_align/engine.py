"""Batched scoring: images decoded and preprocessed in DataLoader workers while the model runs, each distinct prompt
embedded once, per-image cosines kept in float (no rounding)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from chexbench_common.errors import ImageDecodeError
from chexbench_common.progress import Progress

from .scorers import Scorer


class _Inputs(torch.utils.data.Dataset):
    def __init__(self, files: list[Path], transform: Callable):
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.files[index]
        try:
            return self.transform(path)
        except ImageDecodeError:
            raise
        except Exception as exc:  # a corrupt file: one line naming it
            raise ImageDecodeError(f"{path}: cannot decode ({type(exc).__name__}: {exc})") from None


def embed_images(scorer: Scorer, files: list[Path], what: str, batch_size: int, workers: int) -> np.ndarray:
    loader = torch.utils.data.DataLoader(
        _Inputs(files, scorer.image_input),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=getattr(scorer, "device", torch.device("cpu")).type == "cuda",
    )
    parts = []
    with Progress(total=len(files), desc=f"align: {what} images", unit="img") as bar:
        for batch in loader:
            parts.append(scorer.encode_images(batch).cpu().numpy())
            bar.update(len(batch))
    return np.concatenate(parts)


def embed_texts(scorer: Scorer, texts: list[str], batch_size: int) -> tuple[dict[str, np.ndarray], set[str]]:
    """Each distinct text once: {text: unit vector}, and the texts cut at the scorer's token limit."""
    unique = list(dict.fromkeys(texts))
    vectors, truncated = {}, set()
    with Progress(total=len(unique), desc="align: prompts", unit="text") as bar:
        for start in range(0, len(unique), batch_size):
            chunk = unique[start : start + batch_size]
            emb, cut = scorer.encode_texts(chunk)
            vectors |= dict(zip(chunk, emb.cpu().numpy(), strict=True))
            truncated |= {t for t, c in zip(chunk, cut, strict=True) if c}
            bar.update(len(chunk))
    return vectors, truncated


def cosines(image_vectors: np.ndarray, texts: pd.Series, text_vectors: dict[str, np.ndarray]) -> np.ndarray:
    matched = np.stack([text_vectors[t] for t in texts])
    return np.einsum("ij,ij->i", image_vectors.astype(np.float64), matched.astype(np.float64))


def derangement(prompt_ids: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation in which no image keeps a prompt of its own prompt_id where that can be avoided (the
    floor: images paired with other images' prompts)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(prompt_ids))
    for _ in range(len(prompt_ids)):
        clash = np.flatnonzero(prompt_ids[order] == prompt_ids)
        if clash.size == 0:
            break
        for i in clash:  # swap with a random partner that fixes both
            j = int(rng.integers(len(order)))
            if prompt_ids[order[j]] != prompt_ids[i] and prompt_ids[order[i]] != prompt_ids[j]:
                order[i], order[j] = order[j], order[i]
    return order
