"""`finetune` and `generate` of the legacy environment (CHEXBENCH_VARIANT=legacy, LLAVA_ENV=legacy in make): the
same command names, stage folders and tables as the native ones, run by the user's LLaVA-Rad (steps.py).
`chexbench-llava-report` takes them in place of its own through the package's entry point."""

from __future__ import annotations

import os
import sys

import click
from chexbench_common.options import DIR, FILE, builds_request, echo_outputs, group, stage_run_options
from chexbench_common.rundir import generated_images
from chexbench_llava_report.cli_train import pairs_options, test_options


def llava_options(command):
    """Where LLaVA-Rad is: its clone and the Python that has it installed (in the legacy image: /opt/llava-rad)."""
    command = click.option(
        "--llava-python",
        default=lambda: os.environ.get("LLAVA_PYTHON", sys.executable),
        help="Python with LLaVA-Rad installed [$LLAVA_PYTHON, else this one].",
    )(command)
    return click.option(
        "--llava-rad-root",
        type=DIR,
        default=lambda: os.environ.get("LLAVA_RAD_ROOT"),
        required=True,
        help="The user's LLaVA-Rad clone [$LLAVA_RAD_ROOT].",
    )(command)


vicuna_option = click.option("--vicuna", type=DIR, required=True, help="Vicuna-7B v1.5 folder (LLaVA-Rad's base).")


def _recipe(epochs: int, batch_size: int):
    """LLaVA-Rad's recipe with these two of its settings (the others are its own)."""
    from .translation import Recipe

    return Recipe(epochs=epochs, batch_size=batch_size)


@click.command("finetune")
@stage_run_options(device=False)
@pairs_options
@click.option("--fraction", type=click.IntRange(1, 100), default=100, help="Percent of the TRAIN prompts.")
@click.option("--seed", type=int, default=0, help="Seed of the fraction's draw.")
@vicuna_option
@click.option("--tower-config", type=FILE, required=True, help="LLaVA-Rad's biomedclip_cxr_518.json.")
@click.option("--tower-checkpoint", type=FILE, required=True, help="biomedclipcxr_518_checkpoint.pt.")
@click.option("--projector", type=FILE, help="Pre-trained mm_projector.bin (LLaVA-Rad's pretrain stage).")
@click.option("--gpus", type=click.IntRange(min=1), default=1, help="GPUs for DeepSpeed on this node.")
@click.option("--epochs", type=click.IntRange(min=1), default=5)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, help="Per device.")
@llava_options
@builds_request(
    ".steps:FinetuneRequest",
    images=lambda images, results, model, run_id: images or generated_images(results, model, run_id),
    recipe=_recipe,
    llava=group(root=lambda llava_rad_root: llava_rad_root, python=lambda llava_python: llava_python),
)
def legacy_finetune(request):
    """Fine-tune with LLaVA-Rad's own train_mem.py (DeepSpeed ZeRO-2) on a seeded fraction of the synthetic pairs."""
    from .steps import finetune

    echo_outputs(*finetune(request))


@click.command("generate")
@stage_run_options(device=False)
@test_options
@click.option("--finetuned", type=DIR, required=True, help="A finished legacy finetune-p<P> folder.")
@vicuna_option
@click.option("--batch-size", type=click.IntRange(min=1), default=8)
@llava_options
@builds_request(
    ".steps:GenerateRequest",
    llava=group(root=lambda llava_rad_root: llava_rad_root, python=lambda llava_python: llava_python),
)
def legacy_generate(request):
    """Findings for the real TEST images with LLaVA-Rad's own model_mimic_cxr (greedy, conv v1)."""
    from .steps import generate

    echo_outputs(*generate(request))


COMMANDS = [legacy_finetune, legacy_generate]
