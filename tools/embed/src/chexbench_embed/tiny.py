"""Test and demo tooling only: a tiny random-weight model folder shaped like microsoft/rad-dino.

Its vectors mean nothing; it exists so tests and the `make bench` demo can run the raddino code path offline.
"""

from __future__ import annotations

from pathlib import Path

RADDINO_MEAN, RADDINO_STD = 0.5307, 0.2583


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
    return out_dir
