"""Test and demo tooling only: tiny random-weight model folders shaped like microsoft/rad-dino and like
openai/clip-vit-large-patch14-336 (a full CLIP folder, 336 px input, patch 14).

Their vectors mean nothing; they exist so tests and the `make bench` demo can run the raddino and clip code paths
offline.
"""

from __future__ import annotations

from pathlib import Path

RADDINO_MEAN, RADDINO_STD = 0.5307, 0.2583
STAND_IN = "STAND_IN"  # a file in the folder: every table embedded with it says its vectors are a stand-in's


def mark_stand_in(out_dir: Path, what: str) -> Path:
    (out_dir / STAND_IN).write_text(f"random weights ({what}, built by chexbench-embed): the vectors mean nothing\n")
    return out_dir


def build_tiny_raddino(out_dir: str | Path, *, image_size: int = 56, hidden_size: int = 32, seed: int = 0) -> Path:
    """Save a random Dinov2Model plus a rad-dino-style BitImageProcessor (shortest edge = crop = image_size)."""
    import torch
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    config = Dinov2Config(
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        patch_size=14,
        image_size=image_size,
    )
    processor = BitImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[RADDINO_MEAN] * 3,
        image_std=[RADDINO_STD] * 3,
    )
    out_dir = Path(out_dir)
    Dinov2Model(config).save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return mark_stand_in(out_dir, "tiny DINOv2")


def build_tiny_clip(out_dir: str | Path, *, projection_dim: int = 24, seed: int = 0) -> Path:
    """Save a random two-layer CLIPModel (text and vision towers, as openai's folders) with a 336 px vision input."""
    import torch
    from transformers import CLIPConfig, CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    text = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    text |= {"vocab_size": 64, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    vision |= {"image_size": 336, "patch_size": 14}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    out_dir = Path(out_dir)
    CLIPModel(config).save_pretrained(out_dir)
    return mark_stand_in(out_dir, "tiny CLIP")
