"""The native BioViL-T input equals hi-ml-multimodal's own `load_image` + inference transform, pixel for pixel, on
every kind of file the demo and MIMIC hold (run in .venv-himl by `make test-align-himl`; skipped elsewhere)."""

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("health_multimodal", reason="hi-ml-multimodal lives in .venv-himl (make test-align-himl)")

from align_world import write_dicom  # noqa: E402
from chexbench_align.preprocess import biovil_input, load_uint8  # noqa: E402
from chexbench_common.imageio import save_grey_png  # noqa: E402
from health_multimodal.image.data.io import load_image  # noqa: E402
from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference  # noqa: E402
from PIL import Image  # noqa: E402

RNG = np.random.default_rng(7)


def _smooth(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(0.5 + 0.4 * np.sin(x / 11.0) * np.cos(y / 7.0) + 0.05 * RNG.standard_normal((h, w)), 0, 1)


def _write(kind: str, folder: Path) -> Path:
    if kind == "png8":
        return save_grey_png((_smooth(300, 260) * 255).astype(np.uint8), folder / "grey8.png")
    if kind == "png16":  # 512 x 512 uneven 16-bit samples: many land next to a uint8 level
        return save_grey_png(RNG.integers(517, 64001, size=(512, 512)).astype(np.uint16), folder / "grey16.png")
    if kind == "png16_smooth":
        return save_grey_png((_smooth(640, 520) * 65535).astype(np.uint16), folder / "drr16.png")
    if kind in ("rgb", "rgba", "jpeg"):
        channels = [_smooth(96, 128) * s for s in (1.0, 0.7, 0.4)] + (
            [np.full((96, 128), 0.9)] if kind == "rgba" else []
        )
        image = Image.fromarray((np.stack(channels, axis=-1) * 255).astype(np.uint8))
        path = folder / {"rgb": "colour.png", "rgba": "alpha.png", "jpeg": "colour.jpg"}[kind]
        image.save(path, quality=90) if kind == "jpeg" else image.save(path)
        return path
    if kind == "palette":
        image = Image.fromarray((_smooth(80, 90) * 255).astype(np.uint8)).convert("RGB").quantize(colors=40)
        image.save(folder / "palette.png")
        return folder / "palette.png"
    if kind == "dicom_m1":  # the demo's real CR is MONOCHROME1 with a window, 15 of 16 bits stored
        return write_dicom(folder / "m1.dcm", 874 + _smooth(200, 180) * 3000, "MONOCHROME1", window=(1500, 3000))
    if kind == "dicom_m2":
        return write_dicom(folder / "m2.dcm", 40 + _smooth(150, 210) * 4000, "MONOCHROME2", window=(2000, 800))
    raise ValueError(kind)


KINDS = ["png8", "png16", "png16_smooth", "rgb", "rgba", "jpeg", "palette", "dicom_m1", "dicom_m2"]


@pytest.mark.parametrize("kind", KINDS)
def test_load_image_equals_hi_mls(tmp_path, kind):
    path = _write(kind, tmp_path)
    theirs = np.asarray(load_image(path))
    ours = load_uint8(path)
    assert ours.dtype == theirs.dtype == np.uint8 and ours.shape == theirs.shape
    assert (ours == theirs).all(), f"{int((ours != theirs).sum())} pixels differ"


@pytest.mark.parametrize("kind", KINDS)
def test_model_input_equals_hi_mls_transform(tmp_path, kind):
    path = _write(kind, tmp_path)
    transform = create_chest_xray_transform_for_inference(resize=512, center_crop_size=448)
    assert torch.equal(biovil_input(load_uint8(path)), transform(load_image(path)))
