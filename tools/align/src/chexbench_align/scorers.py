"""The scorer interface: an image-text model is a registry entry (a class here), not a fork of the stage.

A scorer turns image files into model inputs (in DataLoader workers), embeds batches of them, embeds texts
(reporting which were truncated to its token limit) and says what it loaded. Scores are cosines of unit vectors.
Two engines implement BioViL-T: `native` (this package, the main stack) and `himl` (hi-ml-multimodal's own code, in
the isolated environment `.venv-himl` / the align-himl image); `CHEXBENCH_ALIGN_ENGINE` picks the default.
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

    def image_input(self, path: Path) -> torch.Tensor: ...

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
    preprocessing: str = "hi-ml load_image (raw samples min-max to uint8, grey) -> resize 512 -> crop 448 -> [0,1] x3"
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

    def image_input(self, path: Path) -> torch.Tensor:
        from .preprocess import biovil_input, load_uint8

        return biovil_input(load_uint8(path))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            return self.image_model(batch.to(self.device)).float()

    def encode_texts(self, texts: list[str]) -> tuple[torch.Tensor, np.ndarray]:
        """hi-ml's text path (trailing '!?.' stripped, padding to the longest), truncated at the token limit."""
        texts = [t.rstrip("!?.") for t in texts]
        full = self.tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]  # counted, not warned
        lengths = np.array([len(ids) for ids in full])
        encoded = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        with torch.inference_mode(), self._autocast():
            vectors = self.text_model_(encoded["input_ids"].to(self.device), encoded["attention_mask"].to(self.device))
        return vectors.float(), lengths > self.max_tokens

    def special_tokens(self) -> list[str]:
        """Tokens a prompt must not contain (hi-ml refuses them; [MASK] is allowed)."""
        return [t for t in self.tokenizer.all_special_tokens if t != self.tokenizer.mask_token]


@dataclass
class BioViLTHiml(BioViLT):
    """BioViL-T run by hi-ml-multimodal 0.2.2 itself: its ImageModel, CXRBertModel/CXRBertTokenizer, `load_image` and
    inference transform; only the truncation at the token limit is ours (hi-ml raises instead)."""

    preprocessing: str = "hi-ml-multimodal 0.2.2: load_image + create_chest_xray_transform_for_inference(512, 448)"

    def __post_init__(self):
        from chexbench_common.errors import BadInputError
        from chexbench_common.hashing import sha256_file
        from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference
        from health_multimodal.image.model.model import ImageModel
        from health_multimodal.image.model.types import ImageEncoderType
        from health_multimodal.text.model import CXRBertModel, CXRBertTokenizer

        from .biovil import text_files

        try:
            self.image_model = ImageModel(
                img_encoder_type=ImageEncoderType.RESNET50_MULTI_IMAGE,
                joint_feature_size=128,
                pretrained_model_path=self.image_weights,
            ).eval()
        except RuntimeError as exc:  # load_state_dict(strict=True) names the keys on its second line
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            detail = lines[1] if len(lines) > 1 else lines[0]
            raise BadInputError(
                f"{self.image_weights}: hi-ml's ImageModel (a full ResNet-50) cannot load it: {detail[:300]}"
            ) from None
        _, text_weights = text_files(self.text_model)
        self.text_model_, loading = CXRBertModel.from_pretrained(str(self.text_model), output_loading_info=True)
        self.text_model_.eval()
        # from_pretrained fills missing weights with random ones and only logs it: refuse instead (the tied decoder
        # weight is the word embeddings, not a missing key)
        missing = [k for k in loading["missing_keys"] if k != "cls.predictions.decoder.weight"]
        unexpected = [k for k in loading["unexpected_keys"] if not k.endswith("position_ids")]
        if missing or unexpected or loading["mismatched_keys"]:
            raise BadInputError(
                f"{text_weights}: not the published CXR-BERT text layout (missing {missing[:3]}, unexpected "
                f"{unexpected[:3]}, wrong shape {[k for k, *_ in loading['mismatched_keys']][:3]})"
            )
        self.tokenizer = CXRBertTokenizer.from_pretrained(str(self.text_model))
        self.transform = create_chest_xray_transform_for_inference(resize=512, center_crop_size=448)
        self.image_model.to(self.device)
        self.text_model_.to(self.device)
        self.weights = {"image": sha256_file(self.image_weights), "text": sha256_file(text_weights)}
        config = self.text_model_.config
        self.max_tokens = min(int(self.tokenizer.model_max_length), int(config.max_position_embeddings))

    def image_input(self, path: Path) -> torch.Tensor:
        from health_multimodal.image.data.io import load_image

        return self.transform(load_image(Path(path)))

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            output = self.image_model(batch.to(self.device))
            return torch.nn.functional.normalize(output.projected_global_embedding, dim=1).float()

    def encode_texts(self, texts: list[str]) -> tuple[torch.Tensor, np.ndarray]:
        texts = [t.rstrip("!?.") for t in texts]
        full = self.tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]  # counted, not warned
        lengths = np.array([len(ids) for ids in full])
        encoded = self.tokenizer.batch_encode_plus(
            texts,
            add_special_tokens=True,
            padding="longest",
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        with torch.inference_mode(), self._autocast():
            vectors = self.text_model_.get_projected_text_embeddings(
                input_ids=encoded["input_ids"].to(self.device), attention_mask=encoded["attention_mask"].to(self.device)
            )
        return vectors.float(), lengths > self.max_tokens


SCORERS = {"biovil-t": BioViLT}
ENGINES = {"native": BioViLT, "himl": BioViLTHiml}
