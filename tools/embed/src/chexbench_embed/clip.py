"""CLIP image embeddings for CMMD (Jayasumana et al. 2024): a local CLIPVisionModelWithProjection folder (the paper
uses openai/clip-vit-large-patch14-336), the paper's preprocessing and L2-normalised `image_embeds`.

Preprocessing, from the original grey image: bicubic resize straight to the model's square input size (336 for
ViT-L/14-336) — no shortest-edge resize and no centre crop, as the paper's reference code does — then CLIP's
per-channel normalisation. The folder's image processor (which crops) is not used.
"""

from __future__ import annotations

import json
from pathlib import Path

from chexbench_common.checkpoints import check_safetensors, load_pretrained
from chexbench_common.errors import MissingResourceError

from .preprocess import GreyTransform

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BICUBIC = 3
PROVENANCE = (
    "CLIP vision tower with projection (local Hugging Face folder; CMMD uses openai/clip-vit-large-patch14-336): "
    "image_embeds, L2-normalised"
)


def vision_config(folder: Path):
    """The vision tower's config; of a full CLIP folder (text and vision, as openai publishes it), its vision part
    with the model's projection size (the vision part's own field may hold a library default)."""
    from transformers import CLIPVisionConfig

    config = CLIPVisionConfig.from_pretrained(folder, local_files_only=True)
    top = json.loads((folder / "config.json").read_text())
    if top.get("model_type") == "clip" and "projection_dim" in top:
        config.projection_dim = int(top["projection_dim"])
    return config


def read_folder(folder: Path) -> tuple[int, GreyTransform]:
    """(embedding dim, transform) of a CLIP folder, checked before any weights are loaded."""
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise MissingResourceError(
            f"extractor clip: model folder {folder} not found (or it has no config.json); "
            "pass --extractor clip=/path/to/a/local/clip/folder"
        )
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type not in ("clip", "clip_vision_model"):
        raise MissingResourceError(f"extractor clip: {folder} holds a {model_type!r} model, not CLIP")
    check_safetensors(folder, "extractor clip")
    config = vision_config(folder)
    size = int(config.image_size)
    transform = GreyTransform(
        mode="squash", height=size, width=size, resample=BICUBIC, gain=1.0, mean=CLIP_MEAN, std=CLIP_STD
    )
    return int(config.projection_dim), transform


def load_model(folder: Path):
    """The CLIP vision model with projection of `folder`, on the CPU in eval mode."""
    from transformers import CLIPVisionModelWithProjection
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = vision_config(folder)

    def load():
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a full CLIP folder's text tower is not loaded: not worth a report
        try:
            return CLIPVisionModelWithProjection.from_pretrained(folder, config=config, local_files_only=True).eval()
        finally:
            hf_logging.set_verbosity(verbosity)

    return load_pretrained("extractor clip", folder, load)


def image_embeds(net, pixels):
    """L2-normalised projected image embeddings."""
    import torch

    return torch.nn.functional.normalize(net(pixel_values=pixels).image_embeds, dim=-1)
