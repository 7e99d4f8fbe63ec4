"""Load chest X-rays from 8/16-bit PNG, JPEG and DICOM as one grey float image in [0, 1].

Intensity handling (the same for every stage):
- 8-bit grey PNG/JPEG: value / 255. Colour images are reduced to grey with ITU-R 601-2 luma (PIL mode "L"),
  which leaves images whose three channels are equal unchanged.
- 16-bit PNG: value / 65535. Never clipped or shifted to 8 bits on load.
- DICOM: the modality LUT (rescale slope/intercept) is applied; if the file defines a VOI LUT or window, it is
  applied and the result divided by the stored bit range (2**BitsStored - 1); otherwise the image is min-max scaled.
  MONOCHROME1 images are inverted (1 - x) so that bone and tissue are bright, as in MONOCHROME2 and JPEG exports.
Anything unreadable or truncated raises ImageDecodeError naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_path
from .errors import ImageDecodeError

DICOM_SUFFIXES = (".dcm", ".dicom")


def is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _load_pil(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()  # forces full decode: a truncated file fails here, not later
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            return np.asarray(img, dtype=np.uint16).astype(np.float32) / 65535.0
        if img.mode == "I":  # 16-bit PNGs often open as 32-bit "I"
            arr = np.asarray(img, dtype=np.int64)
            if arr.min() < 0 or arr.max() > 65535:
                raise ImageDecodeError(f"{path}: 32-bit integer image outside the 16-bit range is not supported")
            return arr.astype(np.float32) / 65535.0
        if img.mode == "F":
            raise ImageDecodeError(f"{path}: floating-point images are not supported; save as 8- or 16-bit PNG")
        if img.mode != "L":
            img = img.convert("L")
        return np.asarray(img, dtype=np.float32) / 255.0


def _load_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path)
    if "PixelData" not in ds:
        raise ImageDecodeError(f"{path}: DICOM file has no pixel data")
    raw = ds.pixel_array
    if raw.ndim != 2:
        raise ImageDecodeError(f"{path}: DICOM pixel data of shape {raw.shape} is not a single grey frame")
    has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
    if has_voi:
        arr = apply_voi_lut(raw, ds).astype(np.float64)
        arr /= float(2 ** int(ds.BitsStored) - 1)
    else:
        arr = apply_modality_lut(raw, ds).astype(np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    arr = np.clip(arr, 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        arr = 1.0 - arr
    return arr.astype(np.float32)


def load_grey(path: str | Path) -> np.ndarray:
    """Decode one image to a float32 (H, W) array in [0, 1]; see the module docstring for the intensity rules."""
    path = Path(path)
    if not path.is_file():
        raise ImageDecodeError(f"{path}: image file not found")
    try:
        return _load_dicom(path) if is_dicom(path) else _load_pil(path)
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, AttributeError, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageDecodeError(f"{path}: cannot decode image (truncated, corrupt or not an image): {reason}") from None


def to_uint8(grey: np.ndarray) -> np.ndarray:
    """Round a [0, 1] grey image to uint8."""
    return np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Save a PIL image as PNG atomically, so an interrupted write never leaves a truncated file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
