"""DINOv2-family encoders (microsoft/rad-dino or any DINOv2 folder): CLS token after the final layer norm.

Dinov2Model's `pooler_output` is `layernorm(last hidden state)[:, 0]`, i.e. the normalised CLS token (768-d for
rad-dino). For `raddino` the folder's own image processor settings (rad-dino: shortest edge 518, bicubic, centre
crop 518, mean 0.5307, std 0.2583) are read once and applied by chexbench to the original grey image
(see preprocess.py).
For `dinov2` (FD_DINOv2, Stein et al. 2023) the preprocessing is dgm-eval's, whatever the folder's processor says:
bicubic resize straight to 224 × 224 (no crop), ImageNet mean/std per channel.
"""

from __future__ import annotations

import json
from pathlib import Path

from chexbench_common.checkpoints import check_safetensors, load_pretrained
from chexbench_common.errors import MissingResourceError

from .preprocess import GreyTransform

MODEL_TYPES = ("dinov2", "dinov2_with_registers")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DGM_EVAL = GreyTransform(
    mode="squash", height=224, width=224, resample=3, gain=1.0, mean=IMAGENET_MEAN, std=IMAGENET_STD
)


def _size(obj, key: str):
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _resample_code(resample) -> int:
    """PIL filter code from a PIL enum/int or a torchvision InterpolationMode."""
    if isinstance(resample, int):
        return int(resample)
    names = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
    return names[str(getattr(resample, "value", resample)).lower()]


def _triple(value) -> tuple[float, float, float]:
    values = [float(value)] * 3 if isinstance(value, int | float) else [float(v) for v in value]
    return values[0], values[1], values[2]


def transform_from_processor(proc, where: str) -> GreyTransform:
    """Translate an image processor's resize/crop/rescale/normalise settings into a GreyTransform."""
    if not proc.do_resize:
        raise MissingResourceError(f"{where}: image processors without resizing are not supported")
    size, crop = proc.size, proc.crop_size if proc.do_center_crop else None
    gain = 255.0 * float(proc.rescale_factor) if proc.do_rescale else 255.0
    mean = _triple(proc.image_mean) if proc.do_normalize else (0.0, 0.0, 0.0)
    std = _triple(proc.image_std) if proc.do_normalize else (1.0, 1.0, 1.0)
    common = {"resample": _resample_code(proc.resample), "gain": gain, "mean": mean, "std": std}
    if _size(size, "shortest_edge") and crop is not None:
        return GreyTransform(
            mode="shortest_edge",
            edge=int(_size(size, "shortest_edge")),
            height=int(_size(crop, "height")),
            width=int(_size(crop, "width")),
            **common,
        )
    if _size(size, "height") and _size(size, "width") and crop is None:
        return GreyTransform(
            mode="squash", height=int(_size(size, "height")), width=int(_size(size, "width")), **common
        )
    raise MissingResourceError(
        f"{where}: unsupported image processor sizes (size={size}, crop={crop}); "
        "chexbench supports shortest_edge + centre crop, or a fixed height x width"
    )


def read_folder(name: str, folder: Path) -> tuple[int, GreyTransform]:
    """(embedding dim, transform) of a DINOv2 model folder, checked before any weights are loaded."""
    config = folder / "config.json"
    if not folder.is_dir() or not config.is_file():
        raise MissingResourceError(
            f"extractor {name}: model folder {folder} not found (or it has no config.json); "
            f"pass --extractor {name}=/path/to/a/local/model/folder"
        )
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in MODEL_TYPES:
        raise MissingResourceError(f"extractor {name}: {folder} holds a {model_type!r} model, not DINOv2")
    if name == "dinov2":
        check_safetensors(folder, f"extractor {name}")
        from transformers import AutoConfig

        return int(AutoConfig.from_pretrained(folder, local_files_only=True).hidden_size), DGM_EVAL
    if not (folder / "preprocessor_config.json").is_file():
        raise MissingResourceError(f"extractor {name}: {folder} has no preprocessor_config.json")
    check_safetensors(folder, f"extractor {name}")  # a truncated copy fails here, before any image is decoded
    from transformers import AutoConfig, AutoImageProcessor

    dim = int(AutoConfig.from_pretrained(folder, local_files_only=True).hidden_size)
    proc = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    return dim, transform_from_processor(proc, f"extractor {name}: {folder}")


def load_model(name: str, folder: Path):
    """The Dinov2 model of `folder` on the CPU in eval mode."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return load_pretrained(
        f"extractor {name}", folder, lambda: AutoModel.from_pretrained(folder, local_files_only=True).eval()
    )
