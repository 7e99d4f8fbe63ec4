"""BioViL-T's inference input, reproduced without hi-ml or torchvision: hi-ml-multimodal 0.2.2's `load_image` (the
file's raw samples min-max remapped to uint8, then grey), `Resize(512)` (short side, PIL bilinear), `CenterCrop(448)`,
`ToTensor`, grey repeated to 3 channels, no mean/std normalisation.

`load_image` is reproduced here rather than read through `chexbench_common.imageio.load_grey`, because BioViL-T's
score is defined by what hi-ml feeds the network and the two readers differ on purpose:
- a DICOM enters as its stored `pixel_array`: no modality or VOI LUT, no window, and MONOCHROME1 is *not* inverted
  (load_grey applies all three), so a MONOCHROME1 file reaches BioViL-T with bone dark;
- a colour PNG/JPEG is min-max remapped over all its channels first and reduced to grey (luma) after;
- a 16-bit PNG is remapped from its integer samples in float64 (from load_grey's float32 [0, 1] values a sample can
  land on the other side of a uint8 level).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from chexbench_common.errors import ImageDecodeError
from chexbench_common.imageio import is_dicom
from PIL import Image

RESIZE, CROP = 512, 448


def remap_to_uint8(samples: np.ndarray) -> np.ndarray:
    """hi-ml's remap_to_uint8, operation for operation (float64: subtract the minimum, divide by the new maximum,
    times 255, truncate). A constant image gives zeros (hi-ml divides 0 by 0 there)."""
    array = np.asarray(samples).astype(float)
    array -= array.min()
    top = array.max()
    if top == 0:
        return np.zeros(array.shape, dtype=np.uint8)
    array /= top
    array *= 255
    return array.astype(np.uint8)


def raw_samples(path: Path) -> np.ndarray:
    """The samples hi-ml's `load_image` starts from: a DICOM's stored pixel_array, or what the image decoder gives
    (uint8 grey or colour channels, uint16 for 16-bit grey; a palette image as its colours)."""
    path = Path(path)
    if is_dicom(path):
        import pydicom

        pixels = pydicom.dcmread(path).pixel_array
        if pixels.ndim != 2:
            raise ImageDecodeError(f"{path}: DICOM pixel data of shape {pixels.shape} is not a single grey frame")
        return pixels
    with Image.open(path) as image:
        image.load()  # a truncated file fails here
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        return np.asarray(image)


def load_uint8(path: Path) -> np.ndarray:
    """hi-ml's `load_image`: the raw samples remapped to uint8 as a whole, then grey ("L"); (H, W) uint8."""
    return np.asarray(Image.fromarray(remap_to_uint8(raw_samples(path))).convert("L"))


def resized_size(width: int, height: int, size: int = RESIZE) -> tuple[int, int]:
    """torchvision's Resize(int) on a PIL image: the short side becomes `size`, the long side is truncated."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def biovil_input(grey: np.ndarray) -> torch.Tensor:
    """A uint8 grey image (H, W) -> (3, 448, 448) float32 in [0, 1]."""
    image = Image.fromarray(np.asarray(grey, dtype=np.uint8), mode="L")
    width, height = resized_size(*image.size)
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    top, left = int(round((height - CROP) / 2.0)), int(round((width - CROP) / 2.0))
    image = image.crop((left, top, left + CROP, top + CROP))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    return x.expand(3, CROP, CROP).clone()
