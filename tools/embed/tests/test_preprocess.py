"""Grey-channel preprocessing against Hugging Face's own processor, and 16-bit handling."""

from __future__ import annotations

import numpy as np
import pytest
from chexbench_common.imageio import load_grey
from chexbench_embed.dino import transform_from_processor
from chexbench_embed.inception import TRANSFORM as INCEPTION
from PIL import Image
from transformers import BitImageProcessorPil
from transformers.image_transforms import get_resize_output_image_size

RADDINO = BitImageProcessorPil(
    size={"shortest_edge": 518},
    crop_size={"height": 518, "width": 518},
    image_mean=[0.5307] * 3,
    image_std=[0.2583] * 3,
)


def _normalised(transform, grey: np.ndarray) -> np.ndarray:
    x = transform.apply(grey)[None] * transform.gain
    return (x - np.array(transform.mean)[:, None, None]) / np.array(transform.std)[:, None, None]


@pytest.mark.parametrize("shape", [(700, 560), (300, 420), (518, 518)])
def test_grey_path_matches_the_hf_processor_on_8_bit_images(shape):
    rng = np.random.default_rng(0)
    h, w = shape
    smooth = np.add.outer(np.sin(np.linspace(0, 6, h)), np.cos(np.linspace(0, 4, w)))
    pixels = np.clip(128 + 50 * smooth + 10 * rng.standard_normal((h, w)), 0, 255).astype(np.uint8)
    reference = RADDINO(images=Image.fromarray(pixels).convert("RGB"), return_tensors="np")["pixel_values"][0]
    ours = _normalised(transform_from_processor(RADDINO, "test"), pixels.astype(np.float32) / 255)
    assert ours.shape == reference.shape == (3, 518, 518)
    diff = np.abs(ours - reference)
    # The processor rounds its resized image to 8 bits (<= 0.5/255/std = 0.0076 each); we keep float32. For scale:
    # bilinear instead of bicubic gives a mean difference of 0.02, squashing instead of cropping 0.17.
    assert diff.mean() < 0.006
    assert diff.max() < 0.04


@pytest.mark.parametrize("shape", [(3056, 2544), (2544, 3056), (519, 518), (100, 7), (518, 1000)])
def test_resize_size_is_the_one_hf_computes(shape):
    transform = transform_from_processor(RADDINO, "test")
    expected = get_resize_output_image_size(np.zeros((3, *shape)), 518, default_to_square=False)
    assert transform.resized_size(*shape) == tuple(expected)


def test_sixteen_bit_images_keep_their_range(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 400).round().astype(np.uint16)[:, None], (1, 300))
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    Image.fromarray(np.round(ramp / 257).astype(np.uint8)).save(tmp_path / "ramp8.png")
    out16 = INCEPTION.apply(load_grey(tmp_path / "ramp16.png"))
    out8 = INCEPTION.apply(load_grey(tmp_path / "ramp8.png"))
    # PIL's .convert("RGB") would turn >99 % of this ramp into 255; here the ramp survives.
    assert np.mean(out16 >= 0.999) < 0.01
    assert abs(float(np.median(out16)) - 0.5) < 0.01
    assert np.abs(out16 - out8).max() < 1.0 / 255


def test_inception_squashes_instead_of_cropping():
    portrait = np.zeros((600, 300), np.float32)
    portrait[:300] = 1.0  # top half white
    out = INCEPTION.apply(portrait)
    assert out.shape == (299, 299)
    assert out[:145].min() > 0.99 and out[155:].max() < 0.01  # the whole height kept, boundary mid-image
