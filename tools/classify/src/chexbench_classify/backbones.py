"""The classifier's backbones in torchvision's layouts (our CPU stack has no torchvision): ResNet-50 from
chexbench_common and DenseNet-121 here, both checked against torchvision in .venv-vision, both loading torchvision
ImageNet state_dicts; and torchxrayvision's chest-X-ray DenseNet-121 (one grey input channel, pixels in
[-1024, 1024]), checked against torchxrayvision's own network in .venv-vision. `width` shrinks a network for tests
(64 = the real one)."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from chexbench_common.resnet import ResNet50
from torch import nn
from torch.nn import functional as F

from .choices import BACKBONE_NAMES

BLOCKS = (6, 12, 24, 16)
BN_SIZE = 4


class _DenseLayer(nn.Module):
    def __init__(self, inputs: int, growth: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(inputs)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(inputs, BN_SIZE * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(BN_SIZE * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(BN_SIZE * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _DenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, inputs: int, growth: int):
        super().__init__({f"denselayer{i + 1}": _DenseLayer(inputs + i * growth, growth) for i in range(layers)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class DenseNet121(nn.Module):
    """torchvision.models.densenet121 (growth 32, blocks 6-12-24-16, 64 initial features, no dropout)."""

    def __init__(self, num_outputs: int = 1000, width: int = 64, in_channels: int = 3):
        super().__init__()
        growth = width // 2
        layers: dict[str, nn.Module] = {
            "conv0": nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
            "norm0": nn.BatchNorm2d(width),
            "relu0": nn.ReLU(inplace=True),
            "pool0": nn.MaxPool2d(3, stride=2, padding=1),
        }
        channels = width
        for i, count in enumerate(BLOCKS, start=1):
            layers[f"denseblock{i}"] = _DenseBlock(count, channels, growth)
            channels += count * growth
            if i < len(BLOCKS):
                layers[f"transition{i}"] = nn.Sequential(
                    OrderedDict(
                        norm=nn.BatchNorm2d(channels),
                        relu=nn.ReLU(inplace=True),
                        conv=nn.Conv2d(channels, channels // 2, 1, bias=False),
                        pool=nn.AvgPool2d(2, 2),
                    )
                )
                channels //= 2
        layers["norm5"] = nn.BatchNorm2d(channels)
        self.features = nn.Sequential(OrderedDict(layers))
        self.classifier = nn.Linear(channels, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(F.relu(self.features(x)), 1)
        return self.classifier(torch.flatten(x, 1))


# torchvision's published DenseNet files name layer parts "norm.1" where the module says "norm1"
_OLD_DENSE_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def canonical_keys(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        match = _OLD_DENSE_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def XrvDenseNet121(num_outputs: int = 18, width: int = 64) -> DenseNet121:
    """torchxrayvision's `models.DenseNet`: torchvision's DenseNet-121 on one grey channel."""
    return DenseNet121(num_outputs=num_outputs, width=width, in_channels=1)


@dataclass(frozen=True)
class Backbone:
    """A network, its head's key prefix and the input it expects: channels and the map of [0, 1] grey pixels."""

    network: Callable[..., nn.Module]
    head: str
    channels: int
    normalise: str  # "imagenet": ImageNet mean/std on 3 copies; "xrv": 2048 x - 1024 (torchxrayvision's range)
    # keys of the published weights that are not parameters of the trunk (torchxrayvision's per-class thresholds)
    extra_keys: tuple[str, ...] = ()


BACKBONES = dict(
    zip(
        BACKBONE_NAMES,  # the command line's names (choices.py)
        (
            Backbone(ResNet50, "fc.", 3, "imagenet"),
            Backbone(DenseNet121, "classifier.", 3, "imagenet"),
            Backbone(XrvDenseNet121, "classifier.", 1, "xrv", extra_keys=("op_threshs",)),
        ),
        strict=True,
    )
)


def build(name: str, classes: int, width: int) -> tuple[nn.Module, str]:
    """(network with a `classes`-way head, the head's key prefix)."""
    backbone = BACKBONES[name]
    return backbone.network(num_outputs=classes, width=width), backbone.head
