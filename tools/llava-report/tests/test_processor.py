"""The stage reads a converted folder's images as chexbench-llava-convert defines them: its copy of the processor
(processor.py) equals the converter's, and an image file on its way into the model (data.model_image, then the
folder's own processor) equals the converter's independent open_clip reference (reference.preprocess)."""

import numpy as np
import pytest
import torch
from chexbench_common.imageio import save_grey_png
from chexbench_llava_convert import processor as converter
from chexbench_llava_convert.reference import preprocess
from chexbench_llava_report import processor as stage
from chexbench_llava_report.data import load_rgb, model_image
from PIL import Image

SIZES = [(518, 518), (600, 700), (700, 600), (540, 1002), (521, 1200), (300, 301)]


@pytest.mark.parametrize("width,height", SIZES)
def test_the_stage_copy_of_the_processor_is_the_converters(width, height):
    image = Image.fromarray(np.random.default_rng(width + height).integers(0, 256, (height, width), dtype=np.uint8))
    ours, theirs = stage.open_clip_resize_crop(image, 518), converter.open_clip_resize_crop(image, 518)
    assert ours.size == theirs.size == (518, 518)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    assert stage.image_processor(518).to_dict() == converter.image_processor(518).to_dict()


def test_an_image_enters_the_converted_model_as_open_clip_prepares_it(converted_tiny_llava_rad, tmp_path):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(converted_tiny_llava_rad, backend="pil")
    size = processor.image_processor.crop_size["height"]
    for k, (width, height) in enumerate([(50, 61), (61, 50), (45, 47)]):
        path = tmp_path / f"cxr{k}.png"
        save_grey_png(np.random.default_rng(k).integers(0, 256, (height, width), dtype=np.uint8), path)
        pixels = processor.image_processor(model_image(path, processor), return_tensors="pt")["pixel_values"][0]
        assert torch.allclose(pixels, preprocess(load_rgb(path), size), atol=1e-6)
