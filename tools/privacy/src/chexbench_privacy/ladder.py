"""The positive control's ladder of named strengths: each training image copied as a memorising generator would
output it (resized to the generator's resolution), then changed by a fixed, named amount.

Each rung fixes the size of every change; only its direction is drawn (crop position, the sign of the gamma and
contrast changes, the noise), seeded and recorded per image. Geometric change is a crop window placed at random and
resized back (zoom plus translation; no wrap-around), then gamma, contrast about the mean and Gaussian noise on the
[0, 1] grey scale. The audit reports sensitivity and rank-1 source recovery per rung: the strongest rung whose copies
are all caught is its detection limit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Strength:
    name: str
    crop: float  # side of the crop window, as a fraction of the image side (1 = no crop)
    gamma: float  # gamma = 1 ± this
    contrast: float  # contrast factor = 1 ± this
    noise: float  # standard deviation of additive Gaussian noise, [0, 1] grey scale

    def describe(self) -> str:
        if self.crop == 1 and not (self.gamma or self.contrast or self.noise):
            return "the training image resized to the generator's resolution, nothing else"
        return (
            f"crop {self.crop:.0%} of the side at a random place and resize back, gamma 1±{self.gamma:g}, "
            f"contrast 1±{self.contrast:g}, Gaussian noise sd {self.noise:g}"
        )


LADDER = (
    Strength("exact", crop=1.0, gamma=0.0, contrast=0.0, noise=0.0),
    Strength("mild", crop=0.99, gamma=0.03, contrast=0.03, noise=0.0),
    Strength("moderate", crop=0.96, gamma=0.08, contrast=0.08, noise=0.003),
    Strength("strong", crop=0.90, gamma=0.15, contrast=0.10, noise=0.02),
)
NAMES = tuple(s.name for s in LADDER)
COPIES_THAT_MUST_BE_CAUGHT = ("exact", "mild")  # a working audit catches every one; the run warns otherwise


def ladder_record() -> list[dict]:
    """The ladder as recorded in the manifest (part of the skip key)."""
    return [{**asdict(s), "description": s.describe()} for s in LADDER]


def _resize(grey: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(np.asarray(grey, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64)


def augment(grey: np.ndarray, size: int, strength: Strength, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """`grey` (in [0, 1]) at size x size, changed by `strength`; returns the image and what was done."""
    h, w = grey.shape
    ch, cw = max(1, int(round(h * strength.crop))), max(1, int(round(w * strength.crop)))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = _resize(grey[top : top + ch, left : left + cw], size)
    gamma = 1 + strength.gamma * float(rng.choice((-1.0, 1.0)))
    contrast = 1 + strength.contrast * float(rng.choice((-1.0, 1.0)))
    out = np.clip(out, 0, 1) ** gamma
    out = (out - out.mean()) * contrast + out.mean()
    if strength.noise:
        out = out + rng.normal(0, strength.noise, out.shape)
    record = {
        "strength": strength.name,
        "crop": strength.crop,
        "crop_top": top,
        "crop_left": left,
        "gamma": gamma,
        "contrast": contrast,
        "noise": strength.noise,
    }
    return np.clip(out, 0, 1), record
