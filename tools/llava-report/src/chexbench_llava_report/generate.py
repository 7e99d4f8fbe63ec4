"""`chexbench-llava-report generate`: findings for the real TEST images, greedy, batched with left padding, with the
instruction the fine-tuning used; resumable batch by batch.

Output `<results>/<model>/<run_id>/llava-report/generate-p<P>[-seed<S>]/` (named after the fine-tuning;
`generate-zeroshot` without `--finetuned`):
`predictions.parquet` and `predictions.csv` (prompt_id, image_path, reference, generated, n_tokens), `manifest.json`,
`_SUCCESS`; while it runs, `parts/` holds the finished batches.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import atomic_path, write_json_atomic
from chexbench_common.errors import BadInputError, MissingResourceError
from chexbench_common.faults import fault_point
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.progress import Progress
from chexbench_common.rundir import StageRun, is_finished
from chexbench_schema.manifest import read_manifest

from . import __version__, naming, prompting
from .data import image_token_count, model_image, test_images
from .determinism import deterministic_ops, run_facts
from .llava_folder import adapter_folder, check_folder, load

log = logging.getLogger(__name__)
PREDICTIONS, PREDICTIONS_CSV, PARTS = "predictions.parquet", "predictions.csv", "parts"
COLUMNS = ["prompt_id", "image_path", "reference", "generated", "n_tokens"]


@dataclass
class Request:
    results: Path
    model: str
    run_id: str
    model_dir: Path
    test_prompts: Path
    real_root: Path
    finetuned: Path | None = None
    batch_size: int = 8
    max_new_tokens: int = 256
    device: str = "auto"
    force: bool = False


def _finetune_record(folder: Path | None) -> dict:
    """The finished fine-tuning's manifest, refused when unfinished or trained with another instruction."""
    if folder is None:
        return {}
    if not is_finished(folder):
        raise MissingResourceError(
            f"{folder}: not a finished finetune folder (no _SUCCESS); run `chexbench-llava-report finetune` first"
        )
    manifest = read_manifest(folder)
    trained = manifest["params"].get("prompting")
    if trained != prompting.describe():
        raise BadInputError(
            f"{folder}: fine-tuned with prompting {trained}, but generation uses {prompting.describe()}; "
            "fine-tune again"
        )
    return manifest


def stage_name(record: dict) -> str:
    if not record:
        return "llava-report/generate-zeroshot"
    return f"llava-report/generate-{naming.tuned(record['params']['fraction'], record['params']['seed'])}"


def run(request: Request) -> tuple[StageRun, bool]:
    check_folder(request.model_dir)
    record = _finetune_record(request.finetuned)
    stage = StageRun(request.results, request.model, request.run_id, stage_name(record), tool_version=__version__)
    with Lifecycle(stage, force=request.force) as life:
        tests = test_images(request.test_prompts, request.real_root)
        params = {
            "max_new_tokens": request.max_new_tokens,
            "greedy": True,
            "prompting": prompting.describe(),
            "finetuned": bool(record),
        }
        inputs = {"model_dir": request.model_dir, "test_prompts": request.test_prompts}
        if record:
            inputs["finetuned_adapter"] = Path(request.finetuned) / "adapter"
        if life.up_to_date(params, inputs):
            return stage, False
        life.start(params, inputs, clear=[PREDICTIONS, PREDICTIONS_CSV])
        if record and record["inputs"]["model_dir"]["sha256"] != stage.manifest["inputs"]["model_dir"]["sha256"]:
            raise BadInputError(f"{request.finetuned}: fine-tuned from another model folder than {request.model_dir}")
        frame, resumed, facts = _generate(request, stage, tests, params)
        with atomic_path(stage.dir / PREDICTIONS) as tmp:
            frame.to_parquet(tmp, index=False)
        with atomic_path(stage.dir / PREDICTIONS_CSV) as tmp:
            frame.to_csv(tmp, index=False)
        shutil.rmtree(stage.dir / PARTS, ignore_errors=True)
        life.update(
            counts={"test_images": len(frame), "empty_generations": int((frame["generated"] == "").sum())},
            resumed_batches=resumed,
            repeatability=facts,
        )
        life.finish({"predictions": stage.dir / PREDICTIONS, "predictions_csv": stage.dir / PREDICTIONS_CSV})
    return stage, True


def generation_model(model_dir: Path, finetuned: Path | None, dtype=None):
    """(model, processor): the converted model with the fine-tuned adapter merged in (LoRA and projector), else with
    the folder's own LLaVA-Rad adapter merged in (zero-shot), else as it is."""
    from peft import PeftModel

    model, processor = load(model_dir, dtype=dtype)
    adapter = Path(finetuned) / "adapter" if finetuned else adapter_folder(model_dir)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval(), processor


def batch_inputs(processor, image_id: int, files: list[Path], instruction: str = prompting.INSTRUCTION) -> dict:
    """Left-padded input ids built as LLaVA-Rad builds them, the attention mask and the pixel values of one batch."""
    import torch

    pixels = processor.image_processor([model_image(f, processor) for f in files], return_tensors="pt")["pixel_values"]
    count = image_token_count(processor, *pixels.shape[-2:])
    rows = [
        prompting.prompt_ids(processor.tokenizer, prompting.prompt_text(instruction), image_id, count) for _ in files
    ]
    pad = _pad_id(processor.tokenizer)
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}


def _generate(request: Request, stage: StageRun, tests: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, int]:
    import torch
    from chexbench_common.device import select_device

    device = select_device(request.device)
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    parts = stage.dir / PARTS
    plan = {"params": params, "batch_size": request.batch_size, "inputs": stage.manifest["inputs"]}
    if not (parts / "plan.json").is_file() or json.loads((parts / "plan.json").read_text()) != json.loads(
        json.dumps(plan)
    ):
        shutil.rmtree(parts, ignore_errors=True)
        write_json_atomic(parts / "plan.json", plan)
    starts = range(0, len(tests), request.batch_size)
    todo = [s for s in starts if not (parts / f"batch-{s:08d}.parquet").is_file()]
    resumed = len(starts) - len(todo)
    if resumed:
        log.info("resuming: %d of %d batches already done", resumed, len(starts))
    if todo:
        model, processor = generation_model(request.model_dir, request.finetuned, dtype)
        model.to(device)
        tokenizer, image_id = processor.tokenizer, model.config.image_token_id
        with deterministic_ops(device), Progress(len(tests), "llava-report generate", "image") as progress:
            progress.update(resumed * request.batch_size)
            for start in todo:
                batch = tests.iloc[start : start + request.batch_size]
                inputs = {k: v.to(device) for k, v in batch_inputs(processor, image_id, list(batch["file"])).items()}
                inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
                with torch.inference_mode():
                    out = model.generate(
                        **inputs,
                        max_new_tokens=request.max_new_tokens,
                        do_sample=False,
                        num_beams=1,
                        pad_token_id=_pad_id(tokenizer),
                        eos_token_id=tokenizer.eos_token_id,
                        suppress_tokens=[image_id],
                    )
                new = out[:, inputs["input_ids"].shape[1] :].cpu()
                texts, counts = [], []
                for row in new.tolist():
                    cut = row.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in row else len(row)
                    counts.append(cut)
                    texts.append(tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
                frame = batch[["prompt_id", "image_path", "reference"]].assign(generated=texts, n_tokens=counts)
                with atomic_path(parts / f"batch-{start:08d}.parquet") as tmp:
                    frame.to_parquet(tmp, index=False)
                progress.update(len(batch))
                fault_point("llava-report:batch")
    frame = pd.concat([pd.read_parquet(parts / f"batch-{s:08d}.parquet") for s in starts], ignore_index=True)
    return frame[COLUMNS], resumed, run_facts(device)


def _pad_id(tokenizer) -> int:
    return tokenizer.unk_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id
