"""ResNet-50 (v1.5, stride on the 3x3 conv) in plain torch with torchvision's module and parameter names.

Our CPU stack's torch has no matching torchvision (docs/DEVELOPING.md, "Environments"); this module keeps the stages
that need a ResNet-50 (privacy re-ID, align) in the main image; imported only by stages that have torch (the rest of
chexbench_common does not import it). tools/privacy/tests/test_reid.py proves equality with torchvision.models.resnet50
in .venv-vision.
"""

from __future__ import annotations

import torch
from torch import nn

LAYERS = (3, 4, 6, 3)
EXPANSION = 4


class Bottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * EXPANSION
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


class ResNet50(nn.Module):
    """torchvision.models.resnet50 layout; `width` = 64 is the real network, smaller values make test-size models."""

    def __init__(self, num_outputs: int = 1000, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = width
        for number, (blocks, scale) in enumerate(zip(LAYERS, (1, 2, 4, 8), strict=True), start=1):
            planes = width * scale
            layer = [Bottleneck(inplanes, planes, stride=1 if number == 1 else 2)]
            layer += [Bottleneck(planes * EXPANSION, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{number}", nn.Sequential(*layer))
            inplanes = planes * EXPANSION
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_outputs)

    @property
    def features(self) -> int:
        return self.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
