"""The Siamese re-identification network of Packhäuser et al. (2022), re-implemented from its description.

Published state_dict layout: `model.*` = a torchvision ResNet-50 whose `fc` is Linear(2048, 128) (its output goes
through a sigmoid: the per-image embedding), `fc_end.*` = Linear(128, 1) applied to |e1 - e2|, then a sigmoid:
the probability that two radiographs show the same patient.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from chexbench_common.checkpoints import check_layout, read_state_dict
from chexbench_common.errors import BadInputError
from chexbench_common.hashing import sha256_file
from chexbench_common.resnet import ResNet50
from PIL import Image
from torch import nn

EMBEDDING = 128
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESSING = {
    "chexgenbench": {"size": 224, "normalise": False},
    "packhaeuser": {"size": 256, "normalise": True},
}


class SiameseReID(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        self.model = ResNet50(num_outputs=EMBEDDING, width=width)
        self.fc_end = nn.Linear(EMBEDDING, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, 128) sigmoid embeddings."""
        return torch.sigmoid(self.model(x))

    def head(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """Same-patient probability of embedding pairs, (N,)."""
        return torch.sigmoid(self.fc_end(torch.abs(e1 - e2))).squeeze(-1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x1), self.embed(x2))


def preprocess(grey: np.ndarray, mode: str) -> torch.Tensor:
    """A grey image in [0, 1] (H, W) -> the network's (3, S, S) input under the named preprocessing."""
    spec = PREPROCESSING[mode]
    size = spec["size"]
    image = Image.fromarray(np.asarray(grey, dtype=np.float32), mode="F")
    resized = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    x = torch.from_numpy(np.clip(resized, 0.0, 1.0)).expand(3, size, size).clone()
    if spec["normalise"]:
        x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    return x


def describe(mode: str) -> str:
    spec = PREPROCESSING[mode]
    norm = "ImageNet mean/std normalisation" if spec["normalise"] else "no normalisation"
    return f"{mode}: grey -> 3 channels, bilinear resize to {spec['size']}x{spec['size']}, [0, 1], {norm}"


def load_reid(path: Path, device: str | torch.device = "cpu") -> tuple[SiameseReID, str]:
    """Load a published-layout checkpoint strictly (weights_only); returns the model in eval mode and its sha256."""
    path = Path(path)
    state = read_state_dict(path, "re-ID checkpoint", "pass --reid-weights with a local .pth file")
    if "model.conv1.weight" not in state:
        raise BadInputError(
            f"re-ID checkpoint {path} is not in the published layout (model.*, fc_end.*): found {list(state)[:3]}"
        )
    model = SiameseReID(width=int(state["model.conv1.weight"].shape[0]))
    check_layout(path, state, model.state_dict(), "the published re-ID layout (model.*, fc_end.*)")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), sha256_file(path)


def build_tiny_reid(path: Path, *, seed: int = 0, base_width: int = 8) -> Path:
    """A random-weight Siamese net saved in the published key layout (tests, the demo)."""
    torch.manual_seed(seed)
    model = SiameseReID(width=base_width)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
