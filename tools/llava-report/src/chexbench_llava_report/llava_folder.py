"""Open a converted (transformers-native) LLaVA folder: the model, its processor, and the LoRA adapter of
`<folder>/adapter/` (LLaVA-Rad's own) when there is one."""

from __future__ import annotations

import json
from pathlib import Path

from chexbench_common.errors import BadInputError, MissingResourceError

from .prompting import IMAGE_TOKEN

ADAPTER = "adapter"
PROJECTOR = "multi_modal_projector"


def check_folder(folder: Path) -> dict:
    """The folder's config, or one clear line saying why it is not a LLaVA folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingResourceError(
            f"{folder}: model folder not found; pass the folder `chexbench-llava-convert convert` wrote"
        )
    config = folder / "config.json"
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError):
        model_type = None
    if model_type != "llava":
        raise BadInputError(
            f"{folder}: not a transformers LLaVA folder ({config.name} has model_type {model_type!r}, not 'llava'); "
            "convert the LLaVA-Rad checkpoint with `chexbench-llava-convert convert` first"
        )
    return json.loads(config.read_text())


def load(folder: Path, dtype=None):
    """(model, processor) from the folder, in eval mode, on the CPU; `<image>` must be one token of the tokenizer."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    check_folder(folder)
    try:
        processor = AutoProcessor.from_pretrained(folder)
        model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise BadInputError(
            f"{folder}: cannot load the LLaVA model or processor ({str(exc).splitlines()[0]})"
        ) from None
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if image_id != model.config.image_token_id:
        raise BadInputError(
            f"{folder}: the tokenizer's {IMAGE_TOKEN} is id {image_id}, "
            f"the model's image_token_id is {model.config.image_token_id}"
        )
    return model.eval(), processor


def adapter_folder(folder: Path) -> Path | None:
    """`<folder>/adapter/` when the converted folder carries LLaVA-Rad's LoRA, else None."""
    path = Path(folder) / ADAPTER
    return path if (path / "adapter_config.json").is_file() else None
