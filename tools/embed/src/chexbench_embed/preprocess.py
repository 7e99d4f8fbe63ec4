"""One grey-image transform per extractor, decided once, applied identically to real and synthetic images.

The input is `chexbench_common.imageio.load_grey`'s float32 (H, W) image in [0, 1] (16-bit images keep their full
range). It is resized once, from the original, with PIL on float32 (mode "F": antialiased when downsampling, no
re-quantisation to 8 bits), optionally centre-cropped, and stays one channel until it reaches the device. There the
grey plane is replicated to three channels and normalised per channel: (x * gain - mean[c]) / std[c]. Resizing and
cropping commute with replicating equal channels, so this equals resizing an RGB copy, at a third of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


@dataclass(frozen=True)
class GreyTransform:
    """`squash`: resize to (height, width). `shortest_edge`: shortest edge to `edge` (aspect kept), then crop."""

    mode: str
    height: int
    width: int
    resample: int
    gain: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    edge: int = 0

    def __post_init__(self):
        if self.mode not in ("squash", "shortest_edge"):
            raise ValueError(f"unknown resize mode {self.mode!r}")
        if self.resample not in FILTERS:
            raise ValueError(f"unknown PIL resample filter {self.resample!r}")
        if self.mode == "shortest_edge" and self.edge < max(self.height, self.width):
            raise ValueError(f"crop {self.height}x{self.width} is larger than the shortest edge {self.edge}")

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the resize, before any crop; int() truncation as in Hugging Face processors."""
        if self.mode == "squash":
            return self.height, self.width
        if width <= height:
            return int(self.edge * height / width), self.edge
        return self.edge, int(self.edge * width / height)

    def apply(self, grey: np.ndarray) -> np.ndarray:
        """Resize (and crop) one grey [0, 1] image; returns float32 (height, width), not yet normalised."""
        new_h, new_w = self.resized_size(*grey.shape)
        image = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32))
        out = np.asarray(image.resize((new_w, new_h), resample=self.resample), dtype=np.float32)
        top, left = (new_h - self.height) // 2, (new_w - self.width) // 2
        return np.array(out[top : top + self.height, left : left + self.width], dtype=np.float32)

    def describe(self) -> dict:
        """The record stored in every embeddings table and in the cache key."""
        if self.mode == "squash":
            resize = f"squash to {self.height}x{self.width} (aspect ratio not kept, nothing cropped)"
        else:
            resize = f"shortest edge to {self.edge} (aspect ratio kept), centre crop {self.height}x{self.width}"
        return {
            "input": "grey float32 in [0, 1] from chexbench_common.imageio.load_grey (16-bit kept, never clipped)",
            "resize": resize,
            "interpolation": f"PIL {FILTERS[self.resample]} on float32 (antialiased downsampling, no 8-bit rounding)",
            "channels": "grey replicated to 3 after resizing",
            "normalisation": "(x * gain - mean[c]) / std[c]",
            "gain": self.gain,
            "mean": list(self.mean),
            "std": list(self.std),
            "output": [3, self.height, self.width],
        }
