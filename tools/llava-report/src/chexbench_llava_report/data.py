"""The stage's inputs from chexbench tables: synthetic image-findings pairs of the TRAIN prompts (fine-tuning), real
TEST images with their reference findings (generation), the seeded fraction of pairs, and the training batches."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.errors import BadInputError, ImageDecodeError
from chexbench_common.imageio import load_grey, to_uint8
from chexbench_common.paths import resolve_under
from chexbench_schema import read_metadata, read_table

from .prompting import IGNORE, training_ids

log = logging.getLogger(__name__)


def _prompts(path: Path, what: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise BadInputError(f"{path}: {what} prompts table not found")
    return read_table(path, "prompts")


def test_images(prompts: Path, real_root: Path) -> pd.DataFrame:
    """One row per real TEST image: prompt_id, image_path, reference (the prompt's findings), file."""
    table = _prompts(prompts, "TEST")
    table = table[table["image_path"].notna()].drop_duplicates("image_path").reset_index(drop=True)
    if table.empty:
        raise BadInputError(f"{prompts}: no TEST row has an image_path")
    files = [
        resolve_under(real_root, p, where=f"{prompts} prompt {i}")
        for i, p in zip(table["prompt_id"], table["image_path"], strict=True)
    ]
    for row, file in enumerate(files, start=1):
        if not file.is_file():
            raise BadInputError(f"{prompts} row {row}: image {file} is missing; check --real-root")
    return pd.DataFrame(
        {
            "prompt_id": table["prompt_id"],
            "image_path": table["image_path"],
            "reference": table["prompt"],
            "file": files,
        }
    )


def training_pairs(prompts: Path, images: Path, images_root: Path | None) -> tuple[pd.DataFrame, int]:
    """Every synthetic image of a TRAIN prompt with the prompt's findings (prompt_id, image_id, findings, file), and
    how many TRAIN prompts have no image in the table (documented handling: they are left out and counted; an image
    the table lists whose file is missing is an error)."""
    train = _prompts(prompts, "TRAIN")
    if not Path(images).is_file():
        raise BadInputError(
            f"{images}: images table not found; generate the TRAIN prompts' images first or pass --images"
        )
    table = read_table(images, "images")
    if images_root is None:
        recorded = read_metadata(images).get("extra", {}).get("images_root")
        images_root = Path(images).parent / recorded if recorded else Path(images).parent
    table = table.reset_index(drop=True)
    table["row"] = table.index + 1
    table = table[table["prompt_id"].isin(train["prompt_id"])].sort_values(["prompt_id", "sample_index"])
    table["file"] = [
        resolve_under(images_root, p, where=f"{images} row {r}")
        for r, p in zip(table["row"], table["path"], strict=True)
    ]
    missing = table[[not f.is_file() for f in table["file"]]]
    if len(missing):
        first = missing.iloc[0]
        raise BadInputError(
            f"{images} row {first['row']}: synthetic image {first['file']} of prompt {first['prompt_id']} is missing "
            f"({len(missing)} in all); check --images-root or generate the images again"
        )
    findings = train.drop_duplicates("prompt_id").set_index("prompt_id")["prompt"]
    pairs = pd.DataFrame(
        {
            "prompt_id": table["prompt_id"].to_numpy(),
            "image_id": table["image_id"].to_numpy(),
            "findings": findings.loc[table["prompt_id"]].to_numpy(),
            "file": table["file"].to_numpy(),
        }
    )
    without = int((~train["prompt_id"].isin(pairs["prompt_id"])).sum())
    if pairs.empty:
        raise BadInputError(
            f"{images}: no image belongs to a prompt of {prompts}; pass the TRAIN prompts' images table"
        )
    if without:
        log.warning("%d of %d TRAIN prompts have no synthetic image in %s: left out", without, len(train), images)
    return pairs, without


def sample_fraction(pairs: pd.DataFrame, percent: int, seed: int) -> pd.DataFrame:
    """`percent` % of the unique prompts (at least one), drawn with `seed`, with every image of each drawn prompt."""
    prompts = np.array(sorted(pairs["prompt_id"].unique()))
    count = max(1, round(len(prompts) * percent / 100))
    chosen = set(np.random.default_rng(seed).choice(prompts, size=count, replace=False))
    return pairs[pairs["prompt_id"].isin(chosen)].reset_index(drop=True)


def load_rgb(path: Path):
    """The image as 8-bit RGB for the image processor (LLaVA-Rad opens every image as PIL RGB); any depth that
    chexbench_common.imageio reads is first scaled to [0, 1] by its bit-depth rules."""
    from PIL import Image

    try:
        grey = load_grey(path)
    except ImageDecodeError:
        raise
    except Exception as exc:
        raise ImageDecodeError(f"{path}: cannot decode ({type(exc).__name__}: {exc})") from None
    return Image.fromarray(to_uint8(grey)).convert("RGB")


def model_image(path: Path, processor):
    """The image as the model sees it before normalisation: 8-bit RGB, resized and centre-cropped the way open_clip
    does it for LLaVA-Rad (the processor's own resize and crop are then identities)."""
    from .processor import open_clip_resize_crop

    return open_clip_resize_crop(load_rgb(path), processor.image_processor.crop_size["height"])


def image_token_count(processor, height: int, width: int) -> int:
    """How many placeholder ids one image of this (processed) size takes: the processor's rule (patches, plus the
    CLS it counts, minus the CLS the `default` strategy drops)."""
    count = (height // processor.patch_size) * (width // processor.patch_size) + processor.num_additional_image_tokens
    return count - (processor.vision_feature_select_strategy == "default")


class PairDataset:
    """A map-style dataset of {input_ids, labels, pixel_values} for the Trainer."""

    def __init__(self, pairs: pd.DataFrame, processor, image_token_id: int, max_length: int, instruction: str):
        self.files, self.findings = list(pairs["file"]), list(pairs["findings"])
        self.processor, self.image_token_id = processor, image_token_id
        self.max_length, self.instruction = max_length, instruction

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        pixels = self.processor.image_processor(model_image(self.files[index], self.processor), return_tensors="pt")[
            "pixel_values"
        ][0]
        count = image_token_count(self.processor, *pixels.shape[-2:])
        ids, labels = training_ids(
            self.processor.tokenizer,
            self.findings[index],
            self.image_token_id,
            count,
            self.max_length,
            self.instruction,
        )
        return {"input_ids": ids, "labels": labels, "pixel_values": pixels}


def collate(batch: list[dict], pad_id: int) -> dict:
    """Right-padded ids (pad_id), labels (IGNORE) and the attention mask; pixel values stacked."""
    import torch

    width = max(len(item["input_ids"]) for item in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        ids[row, :n] = torch.tensor(item["input_ids"])
        labels[row, :n] = torch.tensor(item["labels"])
        mask[row, :n] = 1
    return {
        "input_ids": ids,
        "labels": labels,
        "attention_mask": mask,
        "pixel_values": torch.stack([item["pixel_values"] for item in batch]),
    }
