"""`finetune` and `generate` of the legacy environment (CHEXBENCH_VARIANT=legacy, LLAVA_ENV=legacy in make): the
same command names, stage folders and tables as the native ones, run by the user's LLaVA-Rad (steps.py).
`chexbench-llava-report` takes them in place of its own through the package's entry point."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from chexbench_common.options import echo_outputs, stage_run_options
from chexbench_common.rundir import generated_images
from chexbench_llava_report.cli_train import pairs_options, test_options

_file = click.Path(path_type=Path, dir_okay=False)
_dir = click.Path(path_type=Path, file_okay=False)


def llava_options(command):
    """Where LLaVA-Rad is: its clone and the Python that has it installed (in the legacy image: /opt/llava-rad)."""
    command = click.option(
        "--llava-python",
        default=lambda: os.environ.get("LLAVA_PYTHON", sys.executable),
        help="Python with LLaVA-Rad installed [$LLAVA_PYTHON, else this one].",
    )(command)
    return click.option(
        "--llava-rad-root",
        type=_dir,
        default=lambda: os.environ.get("LLAVA_RAD_ROOT"),
        required=True,
        help="The user's LLaVA-Rad clone [$LLAVA_RAD_ROOT].",
    )(command)


vicuna_option = click.option("--vicuna", type=_dir, required=True, help="Vicuna-7B v1.5 folder (LLaVA-Rad's base).")


@click.command("finetune")
@stage_run_options(device=False)
@pairs_options
@click.option("--fraction", type=click.IntRange(1, 100), default=100, help="Percent of the TRAIN prompts.")
@click.option("--seed", type=int, default=0, help="Seed of the fraction's draw.")
@vicuna_option
@click.option("--tower-config", type=_file, required=True, help="LLaVA-Rad's biomedclip_cxr_518.json.")
@click.option("--tower-checkpoint", type=_file, required=True, help="biomedclipcxr_518_checkpoint.pt.")
@click.option("--projector", type=_file, help="Pre-trained mm_projector.bin (LLaVA-Rad's pretrain stage).")
@click.option("--gpus", type=click.IntRange(min=1), default=1, help="GPUs for DeepSpeed on this node.")
@click.option("--epochs", type=click.IntRange(min=1), default=5)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, help="Per device.")
@llava_options
def legacy_finetune(results, model, run_id, force, train_prompts, images, images_root, fraction, seed, vicuna, **rest):
    """Fine-tune with LLaVA-Rad's own train_mem.py (DeepSpeed ZeRO-2) on a seeded fraction of the synthetic pairs."""
    from .steps import FinetuneRequest, LlavaRad, finetune
    from .translation import Recipe

    request = FinetuneRequest(
        results=results,
        model=model,
        run_id=run_id,
        train_prompts=train_prompts,
        images=images or generated_images(results, model, run_id),
        images_root=images_root,
        fraction=fraction,
        seed=seed,
        vicuna=vicuna,
        tower_config=rest["tower_config"],
        tower_checkpoint=rest["tower_checkpoint"],
        projector=rest["projector"],
        gpus=rest["gpus"],
        recipe=Recipe(epochs=rest["epochs"], batch_size=rest["batch_size"]),
        llava=LlavaRad(rest["llava_rad_root"], rest["llava_python"]),
        force=force,
    )
    echo_outputs(*finetune(request))


@click.command("generate")
@stage_run_options(device=False)
@test_options
@click.option("--finetuned", type=_dir, required=True, help="A finished legacy finetune-p<P> folder.")
@vicuna_option
@click.option("--batch-size", type=click.IntRange(min=1), default=8)
@llava_options
def legacy_generate(
    results, model, run_id, force, test_prompts, real_root, finetuned, vicuna, batch_size, llava_rad_root, llava_python
):
    """Findings for the real TEST images with LLaVA-Rad's own model_mimic_cxr (greedy, conv v1)."""
    from .steps import GenerateRequest, LlavaRad, generate

    request = GenerateRequest(
        results=results,
        model=model,
        run_id=run_id,
        test_prompts=test_prompts,
        real_root=real_root,
        finetuned=finetuned,
        vicuna=vicuna,
        batch_size=batch_size,
        llava=LlavaRad(llava_rad_root, llava_python),
        force=force,
    )
    echo_outputs(*generate(request))


COMMANDS = [legacy_finetune, legacy_generate]
