"""The fidelity ladders: each a known, monotone worsening of a real grey image (float32 (H, W) in [0, 1]).

Every ladder is a list of strengths, weakest first; level k of a ladder (k = 1, 2, ...) is its k-th strength and level
0 is the image itself. Strengths that depend on size are given as a fraction of the image's shorter side, so a
ladder means the same on a 256 px demo radiograph and a 2,500 px MIMIC one. Noise is seeded per image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from chexbench_common.imageio import to_uint8
from PIL import Image, ImageFilter


def _pil(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(to_uint8(grey))


def _float(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


def gaussian_blur(grey: np.ndarray, sigma_fraction: float, rng=None) -> np.ndarray:
    """Gaussian blur with σ = sigma_fraction × the shorter side (PIL's GaussianBlur radius is σ in pixels)."""
    sigma = sigma_fraction * min(grey.shape)
    return _float(_pil(grey).filter(ImageFilter.GaussianBlur(sigma)))


def additive_noise(grey: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Independent Gaussian noise of standard deviation `std` (in [0, 1] units) on every pixel, then clipped."""
    return np.clip(grey + rng.normal(0.0, std, grey.shape).astype(np.float32), 0.0, 1.0)


def jpeg(grey: np.ndarray, quality: float, rng=None) -> np.ndarray:
    """Encoded as a baseline JPEG at `quality` (PIL, 4:2:0 does not apply to grey) and decoded again."""
    buffer = io.BytesIO()
    _pil(grey).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return _float(Image.open(buffer).convert("L"))


def gamma(grey: np.ndarray, exponent: float, rng=None) -> np.ndarray:
    """A tone curve x ** exponent (exponent > 1 darkens the mid-tones and compresses the contrast of dark tissue)."""
    return np.clip(grey, 0.0, 1.0) ** exponent


def down_up(grey: np.ndarray, factor: float, rng=None) -> np.ndarray:
    """Down-sampled by `factor` (antialiased bicubic) and up-sampled back to the original size (bicubic)."""
    image = Image.fromarray(np.clip(grey, 0.0, 1.0).astype(np.float32), mode="F")
    height, width = grey.shape
    small = image.resize((max(1, round(width / factor)), max(1, round(height / factor))), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32), 0.0, 1.0)


@dataclass(frozen=True)
class Ladder:
    """One degradation and its strengths (weakest first); `label` formats a strength for level_label."""

    name: str
    apply: object  # (grey, strength, rng) -> grey
    strengths: tuple[float, ...]
    label: str

    def level_label(self, level: int) -> str:
        return "original" if level == 0 else self.label.format(self.strengths[level - 1])


# Strengths: each step about doubles the FID Inception's distance on the embedded default (20 holdout against 20
# reference radiographs), so adjacent levels' bootstrap CIs stay apart there; level 1 is the weakest step whose CI
# clears level 0's (gamma 2 did not: FID 99 [77, 134] against 47 [26, 84]).
LADDERS = {
    ladder.name: ladder
    for ladder in (
        Ladder("blur", gaussian_blur, (0.008, 0.014, 0.022, 0.045), "sigma={:g}*side"),
        Ladder("noise", additive_noise, (0.007, 0.02, 0.06, 0.2), "std={:g}"),
        Ladder("jpeg", jpeg, (60, 30, 15, 7), "quality={:g}"),
        Ladder("gamma", gamma, (2.5, 4.0, 8.0, 16.0), "gamma={:g}"),
        Ladder("resample", down_up, (5, 9, 16, 32), "down-up x{:g}"),
    )
}
