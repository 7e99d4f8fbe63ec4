"""`run`: the stage in one call; thin Click over pipeline.run, which calls the library functions of finetune,
generate and score."""

from __future__ import annotations

import click
from chexbench_common.options import DIR, FILE, builds_request, echo_outputs, stage_run_options

from .cli_train import TRAINER_DEVICE, model_dir_option, pairs_options, test_options


@click.command()
@stage_run_options(device=TRAINER_DEVICE)
@model_dir_option
@pairs_options
@test_options
@click.option(
    "--fraction",
    "fractions",
    type=click.IntRange(1, 100),
    multiple=True,
    default=(10, 50, 100),
    show_default=True,
    help="Percent of the TRAIN prompts to fine-tune on; repeat (the original: 10, 50, 100).",
)
@click.option("--zero-shot/--no-zero-shot", default=True, show_default=True, help="Also score the model as converted.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fractions' draws and of training.")
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Training seeds --seed, --seed+1, ...: each fraction is drawn and fine-tuned once per seed; with several, "
    "every seed is scored and the mean over seeds gets a CI over reports and seeds.",
)
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Training, per device.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="DataLoader workers.")
@click.option(
    "--logging-steps", type=click.IntRange(min=1), default=10, show_default=True, help="Log the loss every N steps."
)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--chexbert", type=FILE, help="CheXbert weights chexbert.pth (local); without it the rows say skipped.")
@click.option("--chexbert-tokenizer", type=DIR, help="Local bert-base-uncased folder (vocab.txt, config.json).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=500, show_default=True, help="Resamples (0: no CI).")
@builds_request(".pipeline:Request")
def run(request):
    """Fine-tune on each fraction, generate for the real TEST images, score: the whole stage in one call. Under
    several ranks (torchrun, or one Slurm task per GPU) every rank fine-tunes; rank 0 alone generates and scores."""
    from .pipeline import run as run_stage

    run_stage(request, done=echo_outputs)


COMMANDS = [run]
