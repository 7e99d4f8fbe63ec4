"""The extractor registry: what each extractor is (dim, preprocessing, weights sha256) and how it runs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from chexbench_common.errors import BadInputError, MissingResourceError
from chexbench_common.hashing import sha256_path

from . import clip, dino, inception, radiomics
from .preprocess import GreyTransform
from .tiny import STAND_IN

NAMES = ("inception", "raddino", "dinov2", "clip", "radiomics")
PROVENANCE = {
    "raddino": "microsoft/rad-dino (local Hugging Face folder); CLS after the final layer norm",
    "dinov2": "DINOv2 (local Hugging Face folder; FD_DINOv2 uses ViT-L/14); dgm-eval's preprocessing (bicubic 224, "
    "ImageNet mean/std); CLS after the final layer norm",
    "clip": clip.PROVENANCE,
    "radiomics": "pyradiomics (BSD-3) features, the FRD v1 / CheXGenBench 2-D recipe (chexbench_embed.radiomics)",
}
NO_LOGITS = "unavailable ({name} is a self-supervised encoder without class logits)"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class ExtractorSpec:
    """Everything that determines an extractor's vectors, known before any weights are loaded."""

    name: str
    weights: Path
    weights_sha256: str
    dim: int
    transform: GreyTransform
    provenance: str
    logits: str
    extra_tables: tuple[ExtractorSpec, ...] = ()  # further tables the same forward pass writes (inception-logits)
    non_finite: bool = False  # vectors may hold NaN where a feature is undefined (radiomics)
    stand_in: str = ""  # why the weights are a stand-in (a tiny random model's STAND_IN file), else empty

    def tables(self) -> tuple[ExtractorSpec, ...]:
        """This extractor's own table first, then the others its forward pass yields."""
        return (self, *self.extra_tables)

    def preprocessing(self) -> dict:
        return self.transform.describe()

    def metadata(self, precision: str) -> dict:
        """Table metadata: what write_embeddings requires plus provenance, logits status and compute dtype."""
        return {
            "extractor": self.name,
            "weights_sha256": self.weights_sha256,
            "preprocessing": self.preprocessing(),
            "weights_path": str(self.weights),
            "provenance": self.provenance,
            "logits": self.logits,
            "compute_dtype": precision,
            **({"non_finite": "allowed"} if self.non_finite else {}),
            **({"stand_in": self.stand_in} if self.stand_in else {}),
        }

    def cache_record(self, precision: str, bit_depth: str = "auto") -> dict:
        """Everything that determines the vectors of one image file."""
        record = {
            "format": CACHE_FORMAT,
            "extractor": self.name,
            "weights_sha256": self.weights_sha256,
            "preprocessing": self.preprocessing(),
            "compute_dtype": precision,
        }
        return record if bit_depth == "auto" else record | {"bit_depth": bit_depth}  # auto keeps the old keys

    def cache_key(self, precision: str, bit_depth: str = "auto") -> str:
        """Content address of this extractor's vectors (sha256 of cache_record)."""
        record = self.cache_record(precision, bit_depth)
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def parse_request(text: str) -> tuple[str, Path | None]:
    """`name` or `name=path` from the command line."""
    name, _, path = text.partition("=")
    if name not in NAMES:
        raise BadInputError(f"unknown extractor {name!r}; known: {', '.join(NAMES)} (give NAME or NAME=PATH)")
    return name, Path(path).expanduser() if path else None


def build_spec(name: str, path: Path | None) -> ExtractorSpec:
    """Resolve the weights, hash them and fix the preprocessing; raises MissingResourceError for missing weights."""
    if name == "inception":
        return inception_spec(path or inception.default_weights())
    if name == "radiomics":
        return radiomics_spec(path)
    if path is None:
        raise BadInputError(f"extractor {name} needs a local model folder: --extractor {name}=/path/to/folder")
    dim, transform = clip.read_folder(path) if name == "clip" else dino.read_folder(name, path)
    marker = path / STAND_IN
    stand_in = marker.read_text().strip() if marker.is_file() else ""
    logits = NO_LOGITS.format(name=name)
    return ExtractorSpec(name, path, sha256_path(path), dim, transform, PROVENANCE[name], logits, stand_in=stand_in)


def inception_spec(path: Path) -> ExtractorSpec:
    """A TorchScript file gives pool3 alone; a FID state_dict also gives the inception-logits table."""
    module = inception.load(path)
    spec = ExtractorSpec("inception", path, sha256_path(path), inception.DIM, inception.TRANSFORM, "", "")
    if inception.is_torchscript(path):
        return replace(spec, provenance=inception.PROVENANCE, logits=inception.logits_status(list(module.state_dict())))
    available = inception.LOGITS_AVAILABLE
    logits = replace(
        spec,
        name=inception.LOGITS,
        dim=module.fc.out_features,
        provenance=inception.LOGITS_PROVENANCE,
        logits=available,
    )
    return replace(spec, provenance=inception.STATE_DICT_PROVENANCE, logits=available, extra_tables=(logits,))


def radiomics_spec(path: Path | None) -> ExtractorSpec:
    """Radiomics features: no weights; the recipe (settings and library versions) stands in for them."""
    if path is not None:
        raise BadInputError("extractor radiomics takes no weights: give --extractor radiomics")
    try:
        transform = radiomics.RadiomicsTransform()
        recipe = transform.describe()
    except ImportError as exc:
        raise MissingResourceError(
            f"extractor radiomics needs pyradiomics ({exc.name} is missing): pip install pyradiomics-bhklab "
            "SimpleITK PyWavelets (the development environment has them; the stage images do not yet)"
        ) from None
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return ExtractorSpec(
        "radiomics",
        Path("pyradiomics"),
        digest,
        recipe["n_features"],
        transform,
        PROVENANCE["radiomics"],
        "unavailable (radiomics features are not class logits)",
        non_finite=True,
    )


def load_encoder(spec: ExtractorSpec, device):
    """A module mapping a (N, 1, H, W) batch of transformed grey images to (N, dim) vectors, or to {table name:
    vectors} when its network returns several outputs (spec.tables(), in order)."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, net, pooled: bool, embeds=None):
            super().__init__()
            self.net, self.pooled, self.embeds, self.gain = net, pooled, embeds, spec.transform.gain
            self.names = [table.name for table in spec.tables()]
            self.register_buffer("mean", torch.tensor(spec.transform.mean).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(spec.transform.std).view(1, 3, 1, 1))

        def forward(self, grey):
            x = (grey.expand(-1, 3, -1, -1) * self.gain - self.mean) / self.std
            if self.embeds is not None:
                return self.embeds(self.net, x)
            if self.pooled:
                return self.net(pixel_values=x).pooler_output
            out = self.net(x)
            return dict(zip(self.names, out, strict=True)) if isinstance(out, tuple) else out

    if spec.name == "radiomics":  # the features were computed by the transform, in the decoding workers
        return torch.nn.Flatten(1)
    if spec.name == "inception":
        encoder = Encoder(inception.load(spec.weights), pooled=False)
    elif spec.name == "clip":
        encoder = Encoder(clip.load_model(spec.weights), pooled=False, embeds=clip.image_embeds)
    else:
        encoder = Encoder(dino.load_model(spec.name, spec.weights), pooled=True)
    return encoder.eval().to(device)
