"""The scorer interface: an image-text model is a registry entry (a class here), not a fork of the stage.

A scorer turns decoded grey images into model inputs (in DataLoader workers), embeds batches of them, embeds texts
(reporting which were truncated to its token limit) and says what it loaded. Scores are cosines of unit vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch


class Scorer(Protocol):
    name: str
    preprocessing: str
    max_tokens: int
    weights: dict[str, str]

    def image_input(self, grey: np.ndarray) -> torch.Tensor: ...

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor: ...

    def encode_texts(self, texts: list[str]) -> tuple[torch.Tensor, np.ndarray]: ...


@dataclass
class BioViLT:
    """BioViL-T from local files: the image checkpoint and the CXR-BERT text folder."""

    image_weights: Path
    text_model: Path
    device: torch.device
    dtype: torch.dtype | None = None  # autocast dtype (bf16 / fp16), None = fp32
    name: str = "biovil-t"
    preprocessing: str = "hi-ml load_image (min-max uint8) -> resize 512 -> centre crop 448 -> [0,1], 3 channels"
    weights: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        from .biovil import load_image_tower, load_text_tower

        self.image_model, image_sha = load_image_tower(self.image_weights)
        self.text_model_, self.tokenizer, text_sha = load_text_tower(self.text_model)
        self.image_model.to(self.device)
        self.text_model_.to(self.device)
        self.weights = {"image": image_sha, "text": text_sha}
        config = self.text_model_.bert.config
        self.max_tokens = min(int(self.tokenizer.model_max_length), int(config.max_position_embeddings))

    def image_input(self, grey: np.ndarray) -> torch.Tensor:
        from .preprocess import biovil_input

        return biovil_input(grey)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            return self.image_model(batch.to(self.device)).float()

    def encode_texts(self, texts: list[str]) -> tuple[torch.Tensor, np.ndarray]:
        """hi-ml's text path (trailing '!?.' stripped, padding to the longest), truncated at the token limit."""
        texts = [t.rstrip("!?.") for t in texts]
        lengths = np.array([len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]])
        encoded = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        with torch.inference_mode(), self._autocast():
            vectors = self.text_model_(encoded["input_ids"].to(self.device), encoded["attention_mask"].to(self.device))
        return vectors.float(), lengths > self.max_tokens

    def special_tokens(self) -> list[str]:
        """Tokens a prompt must not contain (hi-ml refuses them; [MASK] is allowed)."""
        return [t for t in self.tokenizer.all_special_tokens if t != self.tokenizer.mask_token]


SCORERS = {"biovil-t": BioViLT}
