"""The legacy environment: LLaVA-Rad's own training and inference code, run on our tables.

The user builds it from their own LLaVA-Rad clone (the Dockerfile beside this package; research licence, never
shipped by us). Our side is only this translation: the pairs become records in the format of LLaVA-Rad's MIMIC
loaders (`mimic_train_findings`, `mimic_test_findings`: LLaVA conversations plus `generate_method`, `view`,
`reason`), its entry points get the native path's fine-tuning recipe as arguments, and its prediction lines
(`image`, `query`, `reference`, `prediction`) come back as our predictions table. No module of LLaVA-Rad is imported
here: the commands run in the user's Python (`--llava-python`), so this file works with or without it installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError

TRAIN_LOADER = "mimic_train_findings"
TEST_LOADER = "mimic_test_findings"
CONV_MODE = "v1"
VISION_TOWER = "biomedclip_cxr_518"
# LLaVA-Rad's inference refuses a model folder whose name does not start with this (get_model_name_from_path)
MODEL_NAME_PREFIX = "llava-rad"
# the test loader keeps frontal views only; a record without a view would be dropped silently
FRONTAL_VIEWS = ("AP", "PA")


@dataclass(frozen=True)
class Recipe:
    """LLaVA-Rad's fine-tuning recipe, as the native path trains: LoRA r 64 / alpha 128 / dropout 0.05, lr 1e-4
    cosine, warmup 0.03."""

    epochs: int = 5
    batch_size: int = 16
    learning_rate: float = 1e-4
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    warmup_ratio: float = 0.03
    max_length: int = 2048
    save_steps: int = 500


def records(pairs: pd.DataFrame, instruction: str, *, source: str) -> list[dict]:
    """LLaVA-Rad loader records from pairs with columns `id`, `image` (relative to the image folder), `findings`
    and optionally `view`: one human turn (`<image>` + the instruction) and one answer (the findings)."""
    missing = {"id", "image", "findings"} - set(pairs.columns)
    if missing:
        raise BadInputError(f"{source}: missing columns {sorted(missing)}")
    out = []
    for row_number, row in enumerate(pairs.itertuples(index=False), start=1):
        findings = str(row.findings).strip()
        if not findings:
            raise BadInputError(f"{source} row {row_number}: empty findings; LLaVA-Rad's loaders would drop the row")
        view = getattr(row, "view", None)
        view = view if isinstance(view, str) and view else None
        out.append(
            {
                "id": str(row.id),
                "image": str(row.image),
                "generate_method": "rule-based",
                "view": view,
                "reason": None,
                "conversations": [
                    {"from": "human", "value": f"<image>\n{instruction}"},
                    {"from": "gpt", "value": findings},
                ],
            }
        )
    return out


def check_frontal(items: list[dict], source: str) -> None:
    """The test loader keeps AP/PA records only: refuse others rather than lose them without a word."""
    bad = [i for i, r in enumerate(items, start=1) if r["view"] not in FRONTAL_VIEWS]
    if bad:
        raise BadInputError(
            f"{source}: {len(bad)} rows are not AP/PA (first: row {bad[0]}); LLaVA-Rad's {TEST_LOADER} would drop "
            "them; keep frontal views only in the TEST prompts"
        )


def write_records(items: list[dict], path: Path) -> Path:
    """The records as one JSON list (what LLaVA-Rad's loaders read), written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(items, indent=1))
    return path


def finetune_command(
    *,
    python: str,
    gpus: int,
    data_json: Path,
    image_folder: Path,
    vicuna: Path,
    tower_config: Path,
    tower_checkpoint: Path,
    projector: Path | None,
    output_dir: Path,
    recipe: Recipe,
) -> list[str]:
    """`llava/train/train_mem.py` under DeepSpeed ZeRO-2 (run from the clone's root), LLaVA-Rad's own flags."""
    launcher = [python, "-m", "deepspeed.launcher.runner", "--num_gpus", str(gpus)]
    flags = {
        "deepspeed": "scripts/zero2.json",
        "lora_enable": "True",
        "lora_r": recipe.lora_r,
        "lora_alpha": recipe.lora_alpha,
        "lora_dropout": recipe.lora_dropout,
        "model_name_or_path": vicuna,
        "version": CONV_MODE,
        "data_path": data_json,
        "loader": TRAIN_LOADER,
        "image_folder": image_folder,
        "vision_tower": VISION_TOWER,
        "vision_tower_config": tower_config,
        "vision_tower_checkpoint": tower_checkpoint,
        **({"pretrain_mm_mlp_adapter": projector} if projector else {}),
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "mm_use_im_start_end": "False",
        "mm_use_im_patch_token": "False",
        "bf16": "True",
        "tf32": "True",
        "output_dir": output_dir,
        "num_train_epochs": recipe.epochs,
        "per_device_train_batch_size": recipe.batch_size,
        "gradient_accumulation_steps": 1,
        "save_strategy": "steps",
        "save_steps": recipe.save_steps,
        "save_total_limit": 1,
        "learning_rate": recipe.learning_rate,
        "weight_decay": 0.0,
        "warmup_ratio": recipe.warmup_ratio,
        "lr_scheduler_type": "cosine",
        "logging_steps": 10,
        "model_max_length": recipe.max_length,
        "gradient_checkpointing": "True",
        "lazy_preprocess": "True",
        "dataloader_num_workers": 4,
        "report_to": "none",
    }
    return [*launcher, "llava/train/train_mem.py", *_flags(flags)]


def generate_command(
    *,
    python: str,
    query_file: Path,
    image_folder: Path,
    prediction_file: Path,
    model_path: Path,
    vicuna: Path,
    batch_size: int,
) -> list[str]:
    """`python -m llava.eval.model_mimic_cxr`: greedy (temperature 0), conv v1, 256 new tokens (its default)."""
    if not model_path.name.startswith(MODEL_NAME_PREFIX):
        raise BadInputError(
            f"{model_path}: LLaVA-Rad's inference needs a model folder whose name starts with {MODEL_NAME_PREFIX!r}"
        )
    flags = {
        "query_file": query_file,
        "loader": TEST_LOADER,
        "image_folder": image_folder,
        "conv_mode": CONV_MODE,
        "prediction_file": prediction_file,
        "temperature": 0,
        "model_path": model_path,
        "model_base": vicuna,
        "batch_size": batch_size,
    }
    return [python, "-m", "llava.eval.model_mimic_cxr", *_flags(flags)]


def _flags(flags: dict) -> list[str]:
    return [part for key, value in flags.items() for part in (f"--{key}", str(value))]


def read_predictions(prediction_file: Path, items: list[dict]) -> pd.DataFrame:
    """LLaVA-Rad's prediction lines as our predictions table (prompt_id, image, reference, generated), in the
    order of the records; an image it did not answer, or answered twice, is refused."""
    by_image: dict[str, dict] = {}
    for line_number, line in enumerate(prediction_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            answer = json.loads(line)
            image, prediction = answer["image"], answer["prediction"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise BadInputError(f"{prediction_file} line {line_number}: not a LLaVA-Rad prediction ({error})") from None
        if image in by_image:
            raise BadInputError(f"{prediction_file} line {line_number}: {image} answered twice")
        by_image[image] = {"generated": str(prediction)}
    missing = [r["image"] for r in items if r["image"] not in by_image]
    if missing:
        raise BadInputError(
            f"{prediction_file}: no prediction for {len(missing)} of {len(items)} images (first: {missing[0]}); "
            "rerun generate"
        )
    return pd.DataFrame(
        {
            "prompt_id": [r["id"] for r in items],
            "image": [r["image"] for r in items],
            "reference": [r["conversations"][1]["value"] for r in items],
            "generated": [by_image[r["image"]]["generated"] for r in items],
        }
    )
