"""Images for training: each file decoded and resized once into a cache (uint8 at the training resolution, keyed by
its content hash and the preprocessing, shared across settings, seeds and models), then read from there."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from chexbench_common.errors import ImageDecodeError
from chexbench_common.imageio import load_grey
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageCache:
    """`load(path)` -> (size, size) uint8 grey; computed once per content and size, then memory-mapped."""

    def __init__(self, folder: Path | None, size: int):
        self.folder, self.size = (Path(folder) / f"grey-{size}-bilinear" if folder else None), size
        self._digests: dict[tuple, str] = {}  # per process (persistent workers keep it across epochs)

    def _digest(self, path: Path) -> str:
        """The file's sha256, hashed once per process while its size and mtime stay the same."""
        stat = Path(path).stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return self._digests[key]

    def _resized(self, path: Path) -> np.ndarray:
        try:
            grey = load_grey(path)
        except ImageDecodeError:
            raise
        except Exception as exc:
            raise ImageDecodeError(f"{path}: cannot decode ({type(exc).__name__}: {exc})") from None
        image = Image.fromarray(grey.astype(np.float32), mode="F").resize((self.size,) * 2, Image.Resampling.BILINEAR)
        return np.clip(np.rint(np.asarray(image) * 255), 0, 255).astype(np.uint8)

    def load(self, path: Path) -> np.ndarray:
        if self.folder is None:
            return self._resized(path)
        digest = self._digest(path)
        cached = self.folder / digest[:2] / f"{digest}.npy"
        if cached.is_file():
            return np.load(cached, mmap_mode="r")
        array = self._resized(path)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, array)
        tmp.replace(cached)
        return array


class LabelledImages(torch.utils.data.Dataset):
    """(image, targets (14,), mask (14,), row index) per row of a frame with a `file` column; the image as the
    backbone takes it: `imagenet` (3, S, S) ImageNet-normalised, or `xrv` (1, S, S) in torchxrayvision's
    [-1024, 1024]. The index lets validation under DDP drop the rows a distributed sampler repeats."""

    def __init__(
        self, frame, y: np.ndarray, mask: np.ndarray, cache: ImageCache, hflip: bool = False, normalise="imagenet"
    ):
        self.files, self.y, self.mask, self.cache, self.hflip = list(frame["file"]), y, mask, cache, hflip
        self.normalise = normalise
        self.mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        self.std = torch.tensor(IMAGENET_STD)[:, None, None]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        x = torch.from_numpy(np.array(self.cache.load(self.files[index]), dtype=np.float32) / 255.0)
        if self.hflip and torch.rand(()) < 0.5:  # off by default: a flip moves the heart to the other side
            x = x.flip(-1)
        x = x[None] * 2048 - 1024 if self.normalise == "xrv" else (x.expand(3, -1, -1) - self.mean) / self.std
        return x, torch.from_numpy(self.y[index]), torch.from_numpy(self.mask[index]), index
