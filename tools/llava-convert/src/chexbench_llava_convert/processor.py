"""The converted model's processor: the Vicuna tokenizer plus `<image>`, and open_clip's image preprocessing.

open_clip (2.23, LLaVA-Rad's BiomedCLIP-CXR 518) preprocesses with torchvision on a PIL image: bicubic resize of the
shortest side to S (long side truncated to int), centre crop S x S, RGB, /255, OpenAI CLIP mean/std.
`CLIPImageProcessorPil` with the same settings does the same resize, but its centre crop floors the offset where
torchvision rounds it (half to even): for a leftover of 4k+3 pixels it crops one pixel earlier.
`open_clip_resize_crop` does open_clip's resize and crop in PIL; the processor then sees an S x S image, for which
its own resize and crop are identities, so the two paths agree exactly (tests/test_convert.py proves both facts).
"""

from __future__ import annotations

from PIL import Image

from .layout import IMAGE_TOKEN

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def image_processor(image_size: int):
    """A CLIP image processor (PIL backend) with open_clip's settings at `image_size`."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        resample=Image.Resampling.BICUBIC,
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
        do_convert_rgb=True,
    )


def build_processor(tokenizer, image_size: int, patch_size: int):
    """LlavaProcessor: one `<image>` expands to (image_size / patch_size)^2 tokens (CLS added, then dropped)."""
    from transformers import LlavaProcessor

    return LlavaProcessor(
        image_processor=image_processor(image_size),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )


def open_clip_resize_crop(image: Image.Image, size: int) -> Image.Image:
    """open_clip's geometric steps exactly (torchvision Resize(size, BICUBIC) + CenterCrop(size) on a PIL image)."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if width <= height else (new_long, size)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return image.crop((left, top, left + size, top + size))
