"""BioViL-T's input without torchvision equals hi-ml's torchvision pipeline (run in .venv-vision)."""

import numpy as np
import pytest
import torch
from chexbench_align.preprocess import biovil_input, resized_size, to_uint8
from PIL import Image


def test_uint8_remap_is_hi_mls_on_exact_levels():
    levels = np.arange(256, dtype=np.float64)
    assert (to_uint8(levels / 255).astype(int) == levels.astype(int)).all()
    shifted = np.array([10.0, 20.0, 30.0, 40.0])
    expected = ((shifted - 10) / 30 * 255).astype(np.uint8)
    assert (to_uint8(shifted / 255) == expected).all()


def test_resize_keeps_the_aspect_like_torchvision():
    assert resized_size(600, 800) == (512, 682) and resized_size(800, 600) == (682, 512)


@pytest.mark.parametrize("shape", [(600, 500), (512, 512), (300, 700)])
def test_equals_torchvision_transform(shape):
    torchvision = pytest.importorskip("torchvision", reason="torchvision lives in .venv-vision (make test-vision)")
    from torchvision.transforms import CenterCrop, Compose, Resize, ToTensor

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=shape).astype(np.float64) / 255
    reference = Compose([Resize(512), CenterCrop(448), ToTensor()])(Image.fromarray(to_uint8(grey), mode="L"))
    assert torchvision.__version__ and torch.equal(biovil_input(grey), reference.expand(3, 448, 448))
