"""BioViL-T's input: hi-ml's load_image semantics (checked against hi-ml itself in .venv-himl, tests/himl) and its
torchvision transform without torchvision (checked against torchvision in .venv-vision)."""

import numpy as np
import pytest
import torch
from align_world import write_dicom
from chexbench_align.preprocess import biovil_input, load_uint8, remap_to_uint8, resized_size
from chexbench_common.imageio import load_grey, save_grey_png
from PIL import Image


def test_remap_is_min_max_to_uint8_truncated():
    levels = np.arange(256, dtype=np.uint8)
    assert (remap_to_uint8(levels) == levels).all()
    assert remap_to_uint8(np.array([10, 20, 30, 40])).tolist() == [0, 85, 170, 255]
    assert remap_to_uint8(np.full((3, 3), 7)).tolist() == [[0] * 3] * 3  # constant: zeros, not 0/0


def test_a_dicom_enters_as_stored_samples_without_window_or_inversion(tmp_path):
    pixels = np.array([[100, 1000], [2000, 4000]], np.uint16)
    path = write_dicom(tmp_path / "m1.dcm", pixels, "MONOCHROME1", window=(1000, 500))
    assert load_uint8(path).tolist() == [[0, 58], [124, 255]]  # (v - 100) / 3900 * 255, bone (high) bright
    displayed = load_grey(path)  # what a viewer shows: windowed, inverted
    assert displayed[1, 1] < displayed[0, 0]


def test_a_colour_image_is_remapped_over_its_channels_before_grey(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = [[40, 80], [120, 160]], 100, 200
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "c.png")
    remapped = ((rgb.astype(float) - 40) / 160 * 255).astype(np.uint8)
    expected = np.asarray(Image.fromarray(remapped, mode="RGB").convert("L"))
    assert (load_uint8(tmp_path / "c.png") == expected).all()
    grey_first = np.asarray(Image.fromarray(rgb, mode="RGB").convert("L"))
    assert not (remap_to_uint8(grey_first) == expected).all()  # the order matters


def test_a_16bit_png_is_remapped_from_its_integer_samples(tmp_path):
    samples = np.random.default_rng(0).integers(1234, 61234, size=(64, 64)).astype(np.uint16)
    save_grey_png(samples, tmp_path / "deep.png")
    assert (load_uint8(tmp_path / "deep.png") == remap_to_uint8(samples)).all()


def test_resize_keeps_the_aspect_like_torchvision():
    assert resized_size(600, 800) == (512, 682) and resized_size(800, 600) == (682, 512)


@pytest.mark.parametrize("shape", [(600, 500), (512, 512), (300, 700)])
def test_equals_torchvision_transform(shape):
    torchvision = pytest.importorskip("torchvision", reason="torchvision lives in .venv-vision (make test-vision)")
    from torchvision.transforms import CenterCrop, Compose, Resize, ToTensor

    grey = np.random.default_rng(0).integers(0, 256, size=shape).astype(np.uint8)
    reference = Compose([Resize(512), CenterCrop(448), ToTensor()])(Image.fromarray(grey, mode="L"))
    assert torchvision.__version__ and torch.equal(biovil_input(grey), reference.expand(3, 448, 448))
