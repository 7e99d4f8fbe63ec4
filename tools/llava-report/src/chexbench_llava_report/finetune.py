"""`chexbench-llava-report finetune`: LoRA on the language model's linears plus the full projector, trained with the
HF Trainer on a seeded fraction of the synthetic image-findings pairs; resumable from its last checkpoint.

Output `<results>/<model>/<run_id>/llava-report/finetune-p<P>[-seed<S>]/` (naming.py): `adapter/` (PEFT: the LoRA
and, as a module to save, the projector; safetensors), `pairs.csv` (the pairs trained on), `train_log.csv`,
`manifest.json`, `_SUCCESS`.
Under `accelerate launch` or `torchrun` every rank trains; rank 0 alone owns the folder, its lock and the outputs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from chexbench_common.atomic import write_json_atomic, write_text_atomic
from chexbench_common.errors import BadInputError
from chexbench_common.faults import fault_point
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.progress import Progress
from chexbench_common.rundir import StageRun, generated_images
from transformers import TrainerCallback  # this module is imported by the command, never by the CLI's import

from . import __version__, naming, prompting
from .data import PairDataset, collate, sample_fraction, training_pairs
from .determinism import deterministic_ops, run_facts
from .llava_folder import PROJECTOR, adapter_folder, check_folder, load

log = logging.getLogger(__name__)
# LLaVA-Rad's LoRA targets: every q/k/v/o/gate/up/down linear of the language model, none of the vision tower's
LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
ADAPTER, PAIRS, TRAIN_LOG, CHECKPOINTS = "adapter", "pairs.csv", "train_log.csv", "checkpoints"
RUN_ONLY = ("workers", "device", "save_steps", "logging_steps")


@dataclass
class Options:
    fraction: int = 100
    seed: int = 0
    epochs: float = 5
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_ratio: float = 0.03
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    # CheXGenBench trains a new LoRA on the synthetic pairs; continuing LLaVA-Rad's own (trained on real MIMIC reports)
    # would credit the generator with what the real reports taught it
    continue_adapter: bool = False
    max_length: int = 2048
    save_steps: int = 200
    logging_steps: int = 10
    workers: int = 2
    gradient_checkpointing: bool = True
    device: str = "auto"


@dataclass
class Request:
    results: Path
    model: str
    run_id: str
    model_dir: Path
    train_prompts: Path
    images: Path | None = None
    images_root: Path | None = None
    options: Options = field(default_factory=Options)
    force: bool = False

    def images_table(self) -> Path:
        return Path(self.images or generated_images(self.results, self.model, self.run_id))


def _stage(request: Request) -> StageRun:
    name = f"llava-report/finetune-{naming.tuned(request.options.fraction, request.options.seed)}"
    return StageRun(request.results, request.model, request.run_id, name, tool_version=__version__)


def is_follower() -> bool:
    """A distributed rank other than 0 (torchrun and accelerate set RANK)."""
    return int(os.environ.get("RANK", "0")) > 0


def _params(request: Request) -> dict:
    # what changes the trained weights; the rest (workers, device, checkpoint and log intervals) may differ on resume
    options = {k: v for k, v in asdict(request.options).items() if k not in RUN_ONLY}
    continued = adapter_folder(request.model_dir) if request.options.continue_adapter else None
    return {**options, "prompting": prompting.describe(), "adapter_start": "model-dir adapter" if continued else "new"}


def _inputs(request: Request) -> dict:
    return {"model_dir": request.model_dir, "train_prompts": request.train_prompts, "images": request.images_table()}


def run(request: Request) -> tuple[StageRun, bool]:
    """Rank 0 (or the only process): lock, skip when up to date, train, write the outputs."""
    stage = _stage(request)
    with Lifecycle(stage, force=request.force) as life:
        pairs, without = _prepare(request)
        params, inputs = _params(request), _inputs(request)
        if life.up_to_date(params, inputs):
            return stage, False
        life.start(params, inputs, clear=[PAIRS, TRAIN_LOG])
        shutil.rmtree(stage.dir / ADAPTER, ignore_errors=True)
        resumed, history, steps, facts = _train(request, stage.dir, pairs, params, write=True)
        write_text_atomic(stage.dir / PAIRS, pairs[["prompt_id", "image_id"]].to_csv(index=False))
        write_text_atomic(stage.dir / TRAIN_LOG, pd.DataFrame(history).to_csv(index=False))
        shutil.rmtree(stage.dir / CHECKPOINTS, ignore_errors=True)
        life.update(
            counts={
                "pairs": len(pairs),
                "prompts": int(pairs["prompt_id"].nunique()),
                "prompts_without_images": without,
            },
            resumed_from=resumed,
            optimiser_steps=steps,
            run_options={k: getattr(request.options, k) for k in RUN_ONLY},
            repeatability=facts,
        )
        life.finish({"adapter": stage.dir / ADAPTER, "pairs": stage.dir / PAIRS, "train_log": stage.dir / TRAIN_LOG})
    return stage, True


def follow(request: Request) -> None:
    """A rank other than 0: the same training steps, nothing written (the Trainer saves on rank 0 only)."""
    stage = _stage(request)
    pairs, _ = _prepare(request)
    params = _params(request)
    if not request.force and stage.is_complete(params, _inputs(request)):
        return
    _train(request, stage.dir, pairs, params, write=False)


def _prepare(request: Request):  # --device is checked as the command line is parsed (a cuda:N the Trainer ignores)
    check_folder(request.model_dir)
    pairs, without = training_pairs(request.train_prompts, request.images_table(), request.images_root)
    return sample_fraction(pairs, request.options.fraction, request.options.seed), without


def _peft_model(request: Request, model):
    """LLaVA-Rad's LoRA continued (from `<model-dir>/adapter/`) or a new one, with the projector trained in full."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from peft.utils import set_additional_trainable_modules

    options, continued = request.options, adapter_folder(request.model_dir)
    if continued is not None and options.continue_adapter:
        # LLaVA-Rad keeps its projector outside the adapter: loaded as saved, then the projector made a module to
        # save (declaring it before loading makes PEFT look for projector weights the adapter does not have)
        model = PeftModel.from_pretrained(model, continued, is_trainable=True)
        config = model.peft_config["default"]
        config.modules_to_save = [PROJECTOR]
        set_additional_trainable_modules(model, config, model.config, "default")
        return model
    config = LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=LORA_TARGETS,
        modules_to_save=[PROJECTOR],
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def trainable_model(request: Request, dtype=None):
    """(peft model, processor): the folder's model with the adapter attached; trainable weights kept in float32.
    A new LoRA's A matrices are drawn from torch's global generator, so it is seeded here with the run's seed (the
    Trainer seeds only later, when it is built)."""
    import torch
    from transformers import set_seed

    set_seed(request.options.seed)
    model, processor = load(request.model_dir, dtype=dtype)
    model = _peft_model(request, model)
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.to(torch.float32)
    return model, processor


def _last_checkpoint(folder: Path, params: dict) -> Path | None:
    """The newest complete checkpoint of a run with the same params (a kill mid-save leaves an incomplete one)."""
    record = folder / "params.json"
    if not record.is_file() or json.loads(record.read_text()) != json.loads(json.dumps(params, default=str)):
        return None
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _train(request: Request, stage_dir: Path, pairs: pd.DataFrame, params: dict, write: bool):
    import torch
    from chexbench_common.device import select_device
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    options = request.options
    device = select_device(options.device)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    model, processor = trainable_model(request, dtype=torch.bfloat16 if bf16 else torch.float32)
    # training never reuses a key/value cache; under activation checkpointing transformers would turn it off itself,
    # with a warning in every log
    model.config.text_config.use_cache = False
    image_id = model.config.image_token_id
    dataset = PairDataset(pairs, processor, image_id, options.max_length, prompting.INSTRUCTION)
    prompt_length = len(dataset[0]["labels"]) - sum(label != prompting.IGNORE for label in dataset[0]["labels"])
    if options.max_length <= prompt_length:
        raise BadInputError(
            f"--max-length {options.max_length} leaves no room for findings after the {prompt_length}-token prompt"
        )
    folder = stage_dir / CHECKPOINTS
    resume = _last_checkpoint(folder, params)
    if write:
        if resume is None:
            shutil.rmtree(folder, ignore_errors=True)
        write_json_atomic(folder / "params.json", params)
    pad_id = processor.tokenizer.pad_token_id
    pad_id = processor.tokenizer.unk_token_id if pad_id is None else pad_id
    args = TrainingArguments(
        output_dir=str(folder),
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        learning_rate=options.lr,
        lr_scheduler_type="cosine",
        warmup_steps=options.warmup_ratio,  # a float below 1: the fraction of all steps
        weight_decay=0.0,
        bf16=bf16,
        use_cpu=device.type == "cpu",
        activation_checkpointing=options.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        save_strategy="steps",
        save_steps=options.save_steps,
        save_total_limit=2,
        logging_steps=options.logging_steps,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=options.workers,
        seed=options.seed,
        data_seed=options.seed,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=lambda batch: collate(batch, pad_id),
        callbacks=[_Report(len(pairs))],
    )
    trainer.remove_callback(PrinterCallback)  # stdout stays for the output paths; _Report logs instead
    if resume is not None:
        log.info("resuming from %s", resume)
    with deterministic_ops(device):
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    history = [
        {"step": e["step"], "epoch": e.get("epoch"), "loss": e["loss"], "learning_rate": e.get("learning_rate")}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    if write:
        tmp = stage_dir / f".{ADAPTER}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        trainer.model.save_pretrained(tmp)
        tmp.rename(stage_dir / ADAPTER)
    resumed = str(resume.relative_to(stage_dir)) if resume else None
    return resumed, history, trainer.state.global_step, run_facts(device)


class _Report(TrainerCallback):
    """Progress over optimiser steps and a log line per logged loss (rank 0 only), and the fault point after each
    checkpoint."""

    def __init__(self, n_pairs: int):
        self.n_pairs, self.progress = n_pairs, None

    def on_train_begin(self, args, state, control, **kwargs):
        mode = None if state.is_world_process_zero else "none"
        self.progress = Progress(state.max_steps, "llava-report finetune", "step", mode=mode)
        self.progress.update(state.global_step)
        if state.is_world_process_zero:
            log.info("finetune: %d pairs, %d steps of %g epochs", self.n_pairs, state.max_steps, args.num_train_epochs)

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.update()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and state.is_world_process_zero:
            log.info("step %d/%d, epoch %.2f, loss %.4f", state.global_step, state.max_steps, state.epoch, logs["loss"])

    def on_save(self, args, state, control, **kwargs):
        fault_point("llava-report:checkpoint")

    def on_train_end(self, args, state, control, **kwargs):
        self.progress.close()
