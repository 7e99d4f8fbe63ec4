"""Decode images in worker processes: re-ID inputs (each image embedded once, cached) and float pixel distances."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from chexbench_common.errors import ImageDecodeError, ImageDecodeErrors
from chexbench_common.imageio import load_grey
from chexbench_common.progress import Progress
from PIL import Image

from .reid import EMBEDDING, SiameseReID, preprocess


class _ReidInputs(torch.utils.data.Dataset):
    """The re-ID network's input of each file, (3, S, S) float32, or the line saying why the file does not decode
    (returned, not raised: a worker's exception would reach the user wrapped in its traceback)."""

    def __init__(self, files: list[Path], mode: str):
        self.files, self.mode = files, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, str | None]:
        try:
            return preprocess(load_grey(self.files[index]), self.mode), None
        except ImageDecodeError as exc:
            return None, str(exc)


def _collate(batch):
    """(stacked inputs, or None when a file failed; error lines; batch length)."""
    errors = [error for _, error in batch if error is not None]
    return (None if errors else torch.stack([x for x, _ in batch])), errors, len(batch)


def grey_at(path: Path, size: int) -> np.ndarray:
    """The grey image resized to size x size (bilinear, float, no quantisation), on the 0-255 scale."""
    image = Image.fromarray(load_grey(path).astype(np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64) * 255.0


def pixel_distances(source: Path, generations: Sequence[Path], size: int) -> np.ndarray:
    """RMS grey-level difference (0-255 scale, float) between one source image and each of its generations."""
    ref = grey_at(source, size)
    return np.array([np.sqrt(np.mean((grey_at(g, size) - ref) ** 2)) for g in generations])


def workers(requested: int | None) -> int:
    return requested if requested is not None else min(8, os.cpu_count() or 1)


def map_ordered(fn: Callable, items: Sequence, n_workers: int, chunksize: int = 4):
    """fn over items in order, in worker processes when n_workers > 0 (errors re-raised as they are)."""
    if n_workers <= 0 or len(items) < 2:
        yield from map(fn, items)
        return
    # forkserver: workers start from a clean process, never a fork of one whose torch threads are running
    with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        yield from pool.map(fn, items, chunksize=chunksize)


def set_key(weights_sha: str, mode: str, files: Sequence[Path], identity: str) -> str:
    """Cache key of one set's re-ID embeddings: weights, preprocessing, and each file's path, size and mtime
    (`identity` adds a content hash where one is known, e.g. the images table's sha256 column)."""
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    blob = json.dumps([weights_sha, mode, identity, stats]).encode()
    return hashlib.sha256(blob).hexdigest()


class ReidEncoder:
    """Embeds image files with the Siamese branch, batched, decoding in worker processes, cached per set."""

    def __init__(
        self,
        model: SiameseReID,
        weights_sha: str,
        mode: str,
        device: torch.device,
        *,
        batch_size: int = 32,
        n_workers: int | None = None,
        cache_dir: Path | None = None,
    ):
        self.model, self.weights_sha, self.mode, self.device = model, weights_sha, mode, device
        self.batch_size, self.n_workers, self.cache_dir = batch_size, workers(n_workers), cache_dir
        self.hits = self.misses = 0

    def encode(self, files: Sequence[Path], what: str, identity: str = "") -> np.ndarray:
        key = set_key(self.weights_sha, self.mode, files, identity)
        cached = self.cache_dir / f"reid-{key}.npy" if self.cache_dir else None
        if cached is not None and cached.is_file():
            self.hits += 1
            return np.load(cached)
        self.misses += 1
        # torch's DataLoader, not a bare process pool: its workers run torch single-threaded, so forking after the
        # parent's intra-op threads started cannot deadlock
        loader = torch.utils.data.DataLoader(
            _ReidInputs(list(files), self.mode),
            batch_size=self.batch_size,
            num_workers=self.n_workers,
            collate_fn=_collate,
        )
        parts, failed = [], []
        with Progress(total=len(files), desc=f"re-ID {what}", unit="img") as bar, torch.inference_mode():
            for batch, errors, count in loader:
                failed += errors
                if not failed:  # after a bad file the rest is only decoded, to name every bad file at once
                    parts.append(self.model.embed(batch.to(self.device)).float().cpu().numpy())
                bar.update(count)
        if failed:
            raise ImageDecodeErrors([f"re-ID {what}: {error}" for error in failed])
        out = np.concatenate(parts) if parts else np.empty((0, EMBEDDING), dtype=np.float32)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, out)
            tmp.replace(cached)
        return out

    def scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Re-ID probabilities of row pairs (a[i], b[i])."""
        with torch.inference_mode():
            ta = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
            tb = torch.from_numpy(np.ascontiguousarray(b)).to(self.device)
            return self.model.head(ta, tb).float().cpu().numpy().astype(np.float64)
