"""BioViL-T's inference input, reproduced without torchvision: hi-ml-multimodal's `load_image` (min-max to uint8,
grey) then `Resize(512)` (short side, PIL bilinear), `CenterCrop(448)`, `ToTensor`, grey repeated to 3 channels,
no mean/std normalisation."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

RESIZE, CROP = 512, 448


def to_uint8(grey: np.ndarray) -> np.ndarray:
    """hi-ml's remap_to_uint8: (x - min) / (max - min) * 255, truncated. Our decoder gives [0, 1] floats, so a value
    that is exactly an integer level in hi-ml can land a rounding error below it: 1e-4 of a level puts it back
    (8-bit sources have fractional parts of at least 1/255 level, far above it)."""
    x = np.asarray(grey, dtype=np.float64)
    low, high = x.min(), x.max()
    if high == low:
        return np.zeros(x.shape, dtype=np.uint8)
    return np.floor((x - low) / (high - low) * 255 + 1e-4).clip(0, 255).astype(np.uint8)


def resized_size(width: int, height: int, size: int = RESIZE) -> tuple[int, int]:
    """torchvision's Resize(int) on a PIL image: the short side becomes `size`, the long side is truncated."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def biovil_input(grey: np.ndarray) -> torch.Tensor:
    """A decoded grey image in [0, 1] (H, W) -> (3, 448, 448) float32 in [0, 1]."""
    image = Image.fromarray(to_uint8(grey), mode="L")
    width, height = resized_size(*image.size)
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    top, left = int(round((height - CROP) / 2.0)), int(round((width - CROP) / 2.0))
    image = image.crop((left, top, left + CROP, top + CROP))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    return x.expand(3, CROP, CROP).clone()
