"""Commands of the train area: `finetune` (LoRA + projector on synthetic image-findings pairs) and `generate`
(findings for the real TEST images). Thin Click; the work is in finetune.py and generate.py."""

from __future__ import annotations

import click
from chexbench_common.options import (
    DIR,
    FILE,
    KEEP_DEFAULT,
    DeviceType,
    builds_request,
    echo_outputs,
    group,
    stage_run_options,
)

# the Trainer picks its GPUs itself (all visible ones), so a cuda:N it would not honour is refused
TRAINER_DEVICE = DeviceType(index_refused="the Trainer picks its GPUs")
model_dir_option = click.option(
    "--model-dir",
    type=DIR,
    required=True,
    help="Converted LLaVA folder (`chexbench-llava-convert convert`). Its adapter/ (LLaVA-Rad's LoRA) is what a "
    "zero-shot generate applies (and finetune --continue-adapter continues).",
)


def _options(*options):
    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


# the synthetic image-findings pairs (finetune, run, the legacy finetune) and the real TEST images (generate, run)
pairs_options = _options(
    click.option("--train-prompts", type=FILE, required=True, help="TRAIN prompts table (prompt = findings)."),
    click.option("--images", type=FILE, help="images table of the TRAIN prompts' generations [<run>/generate]."),
    click.option("--images-root", type=DIR, help="Folder of the images table's paths [default: its metadata]."),
)
test_options = _options(
    click.option(
        "--test-prompts", type=FILE, required=True, help="TEST prompts table (real images, reference findings)."
    ),
    click.option("--real-root", type=DIR, required=True, help="Folder the TEST prompts' image_path are relative to."),
)


@click.command()
@stage_run_options(device=TRAINER_DEVICE)
@model_dir_option
@pairs_options
@click.option(
    "--fraction", type=click.IntRange(1, 100), default=100, help="Percent of the TRAIN prompts (10, 50, 100)."
)
@click.option("--seed", type=int, default=0, help="Seed of the fraction's draw and of training.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=5.0)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, help="Per device.")
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, help="Gradient accumulation steps.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4)
@click.option("--lora-r", type=click.IntRange(min=1), default=64, help="Rank of a new LoRA.")
@click.option("--lora-alpha", type=click.IntRange(min=1), default=128, help="Alpha of a new LoRA.")
@click.option("--lora-dropout", type=click.FloatRange(0, 1), default=0.05, help="Dropout of a new LoRA.")
@click.option(
    "--continue-adapter",
    is_flag=True,
    help="Continue --model-dir's adapter/ (LLaVA-Rad's LoRA, trained on real reports) instead of a new LoRA.",
)
@click.option("--max-length", type=click.IntRange(min=8), default=2048, help="Tokens per sample (LLaVA-Rad: 2048).")
@click.option("--save-steps", type=click.IntRange(min=1), default=200, help="Checkpoint every N optimiser steps.")
@click.option("--logging-steps", type=click.IntRange(min=1), default=10, help="Log the loss every N steps.")
@click.option("--workers", type=click.IntRange(min=0), default=2, help="DataLoader workers.")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=True)
@builds_request(".finetune:Request", options=group(warmup_ratio=KEEP_DEFAULT))
def finetune(request):
    """Fine-tune the converted LLaVA on a seeded fraction of the synthetic image-findings pairs (LoRA on the
    language model's linears, projector in full). Multi-GPU: `accelerate launch -m chexbench_llava_report
    finetune ...`, `torchrun --nproc-per-node N -m chexbench_llava_report finetune ...`, or one Slurm task per GPU."""
    from chexbench_common.distributed import torch_env_from_slurm

    torch_env_from_slurm()
    from .finetune import follow, is_follower, run

    if is_follower():
        follow(request)
        return
    echo_outputs(*run(request))


@click.command()
@stage_run_options(device=True)
@model_dir_option
@test_options
@click.option("--finetuned", type=DIR, help="A finished finetune-p<P> folder [default: zero-shot].")
@click.option("--batch-size", type=click.IntRange(min=1), default=8)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256)
@builds_request(".generate:Request")
def generate(request):
    """Generate findings for the real TEST images (greedy), with the fine-tuned adapter or zero-shot."""
    from .generate import run

    echo_outputs(*run(request))


COMMANDS = [finetune, generate]
