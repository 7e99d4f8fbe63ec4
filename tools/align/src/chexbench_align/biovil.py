"""BioViL-T (Bannur et al. 2023) re-implemented in plain torch + transformers, loading the published weights.

Image tower (hi-ml-multimodal 0.2.2's ImageModel, RESNET50_MULTI_IMAGE, single image): ResNet-50 trunk to layer4 ->
1x1 conv 2048->256 (`backbone_to_vit`, no bias) -> concatenated with the learned `missing_previous_emb` (no previous
image) -> projector (conv 512->128 no bias, BatchNorm, ReLU, conv 128->128) -> mean over patches -> L2 normalised.
Text tower (CXRBertModel): a BERT encoder, the CLS token of its last hidden state -> head (Linear 768->128, GELU,
LayerNorm eps 1e-12, Linear 128->128) -> L2 normalised. Score = cosine of the two.

Loading is strict: every weight the towers use must be present with its shape, and the only other keys allowed are
the ones the published files carry for parts a single-image scorer does not run (LAYOUT_UNUSED), named on refusal.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from chexbench_common.checkpoints import check_layout, read_state_dict
from chexbench_common.errors import BadInputError
from chexbench_common.hashing import sha256_file
from chexbench_common.resnet import ResNet50
from torch import nn
from torch.nn import functional as F

JOINT = 128
PATCH = 256
IMAGE_UNUSED = ("encoder.vit_pooler.", "encoder.encoder.fc.")  # temporal pooler (two images), ImageNet classifier
TEXT_UNUSED = ("cls.predictions.",)  # the masked-language-model head
TEXT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


class ImageTower(nn.Module):
    """Names follow the published state_dict (`encoder.encoder.*` = torchvision ResNet-50)."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.encoder = ResNet50(width=width)
        trunk = self.encoder.encoder.features
        self.encoder.backbone_to_vit = nn.Conv2d(trunk, PATCH, 1, bias=False)
        self.encoder.missing_previous_emb = nn.Parameter(torch.zeros(1, PATCH, 1, 1))
        self.projector = nn.Module()
        self.projector.model = nn.Sequential(
            nn.Conv2d(2 * PATCH, JOINT, 1, bias=False),
            nn.BatchNorm2d(JOINT),
            nn.ReLU(inplace=True),
            nn.Conv2d(JOINT, JOINT, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 448, 448) in [0, 1] -> (N, 128) unit vectors."""
        r = self.encoder.encoder
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        patches = self.encoder.backbone_to_vit(r.layer4(r.layer3(r.layer2(r.layer1(x)))))
        missing = self.encoder.missing_previous_emb.expand(-1, -1, *patches.shape[2:]).expand(len(patches), -1, -1, -1)
        projected = self.projector.model(torch.cat([patches, missing], dim=1))
        return F.normalize(projected.mean(dim=(2, 3)), dim=1)


class TextHead(nn.Module):
    def __init__(self, hidden: int, joint: int = JOINT):
        super().__init__()
        self.dense_to_hidden = nn.Linear(hidden, joint)
        self.LayerNorm = nn.LayerNorm(joint, eps=1e-12)
        self.dense_to_output = nn.Linear(joint, joint)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.dense_to_output(self.LayerNorm(F.gelu(self.dense_to_hidden(cls))))


class TextTower(nn.Module):
    def __init__(self, config):
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls_projection_head = TextHead(config.hidden_size, getattr(config, "projection_size", JOINT))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(self.cls_projection_head(hidden[:, 0, :]), dim=1)


def load_image_tower(path: Path) -> tuple[ImageTower, str]:
    """The published `biovil_t_image_model_proj_size_128.pt` (or a file of its layout) -> eval model, sha256."""
    path = Path(path)
    state = read_state_dict(path, "BioViL-T image weights", "pass --image-weights with a local file")
    if "encoder.encoder.conv1.weight" not in state:
        raise BadInputError(f"{path} is not the published BioViL-T image layout (no encoder.encoder.conv1.weight)")
    model = ImageTower(width=int(state["encoder.encoder.conv1.weight"].shape[0]))
    check_layout(path, state, model.state_dict(), "the published BioViL-T image layout", IMAGE_UNUSED)
    model.load_state_dict({k: state[k] for k in model.state_dict()}, strict=True)
    return model.eval(), sha256_file(path)


def text_files(folder: Path) -> tuple[Path, Path]:
    """(config.json, weights file) of a text model folder."""
    folder = Path(folder)
    config = folder / "config.json"
    weights = next((folder / n for n in TEXT_WEIGHTS if (folder / n).is_file()), None)
    if not config.is_file() or weights is None or not (folder / "vocab.txt").is_file():
        raise BadInputError(
            f"{folder}: not a BioViL-T text model folder "
            f"(needs config.json, vocab.txt and one of {', '.join(TEXT_WEIGHTS)})"
        )
    return config, weights


def load_text_tower(folder: Path):
    """A CXR-BERT folder (config.json, vocab.txt, weights) -> (eval TextTower, tokenizer, sha256 of the weights)."""
    from transformers import BertConfig, BertTokenizer

    config_path, weights = text_files(folder)
    raw = json.loads(config_path.read_text())
    skip = ("architectures", "auto_map", "model_type", "transformers_version")
    model = TextTower(BertConfig(**{k: v for k, v in raw.items() if k not in skip}))
    state = read_state_dict(weights, "CXR-BERT weights", "pass --text-model with the model folder")
    # published names: `bert.*` for the encoder (position_ids is a buffer some savers drop), the head as it is
    expected = {f"bert.{k}": v for k, v in model.bert.state_dict().items() if not k.endswith("position_ids")}
    expected |= {f"cls_projection_head.{k}": v for k, v in model.cls_projection_head.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    check_layout(weights, state, expected, "the published CXR-BERT text layout", TEXT_UNUSED)
    result = model.bert.load_state_dict(
        {k.removeprefix("bert."): state[k] for k in expected if k.startswith("bert.")}, strict=False
    )
    assert all(k.endswith("position_ids") for k in result.missing_keys) and not result.unexpected_keys, result
    head = {k.removeprefix("cls_projection_head."): state[k] for k in expected if k.startswith("cls_projection_head.")}
    model.cls_projection_head.load_state_dict(head, strict=True)
    tokenizer = BertTokenizer.from_pretrained(str(folder))
    return model.eval(), tokenizer, sha256_file(weights)
