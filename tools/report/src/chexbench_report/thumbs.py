"""Images inlined as data URIs: thumbnails of X-rays (any depth, DICOM included) and stage PNGs, downscaled."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from chexbench_common.imageio import load_grey
from PIL import Image

THUMB = 128  # thumbnail edge in pixels
MAX_FIGURE = 1400  # stage figures (ROC curves, contact sheets) wider than this are downscaled
MAX_PNG_BYTES = 300_000  # a figure whose PNG is larger (a photographic contact sheet) is inlined as JPEG


def _uri(image: Image.Image, fmt: str) -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": 85} if fmt == "JPEG" else {"optimize": True}))
    mime = "jpeg" if fmt == "JPEG" else "png"
    return f"data:image/{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def thumbnail(path: Path, size: int = THUMB) -> str:
    """A grey JPEG thumbnail (longest edge `size`) of an X-ray, decoded like the stages decode it (bit depth,
    DICOM windowing), then stretched to its own range so a faint image is still visible."""
    grey = load_grey(path)
    low, high = float(np.min(grey)), float(np.max(grey))
    scaled = (grey - low) / (high - low) if high > low else np.zeros_like(grey)
    image = Image.fromarray((scaled * 255).round().astype(np.uint8), mode="L")
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return _uri(image, "JPEG")


def figure(path: Path) -> str:
    """A stage's PNG figure as a data URI, downscaled when wider than MAX_FIGURE."""
    with Image.open(path) as image:
        image.load()
        if image.width > MAX_FIGURE:
            image = image.resize((MAX_FIGURE, round(image.height * MAX_FIGURE / image.width)), Image.Resampling.LANCZOS)
        uri = _uri(image, "PNG")
        return uri if len(uri) * 3 // 4 <= MAX_PNG_BYTES else _uri(image.convert("RGB"), "JPEG")
