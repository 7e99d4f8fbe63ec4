"""`run`: the stage in one call (what `make bench` and the Slurm template use): fine-tune on each fraction of the
synthetic pairs, generate findings for the real TEST images with each (and zero-shot), score them all. Each step is
the command of the same name with its defaults, so a finished step (e.g. a multi-GPU `finetune` launched before
with accelerate) is found up to date and skipped."""

from __future__ import annotations

import itertools
from pathlib import Path

import click
from chexbench_common.options import stage_run_options
from chexbench_common.rundir import run_folder

from . import naming
from .cli_score import score
from .cli_train import finetune, generate, model_dir_option, pairs_options, test_options

_file = click.Path(path_type=Path, dir_okay=False)
_dir = click.Path(path_type=Path, file_okay=False)


@click.command()
@stage_run_options(device=True)
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
@click.option("--chexbert", type=_file, help="CheXbert weights chexbert.pth (local); without it the rows say skipped.")
@click.option("--chexbert-tokenizer", type=_dir, help="Local bert-base-uncased folder (vocab.txt, config.json).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=500, show_default=True, help="Resamples (0: no CI).")
@click.pass_context
def run(ctx, results, model, run_id, force, device, model_dir, train_prompts, images, images_root, **options):
    """Fine-tune on each fraction, generate for the real TEST images, score: the whole stage in one call. Under
    several ranks (torchrun, or one Slurm task per GPU) every rank fine-tunes; rank 0 alone generates and scores."""
    from chexbench_common.distributed import torch_env_from_slurm

    from .finetune import is_follower

    torch_env_from_slurm()
    where = {"results": results, "model": model, "run_id": run_id, "force": force, "device": device}
    folder = run_folder(results, model, run_id) / "llava-report"
    seeds = range(options["seed"], options["seed"] + options["seeds"])
    for fraction, seed in itertools.product(options["fractions"], seeds):
        ctx.invoke(
            finetune,
            **where,
            model_dir=model_dir,
            train_prompts=train_prompts,
            images=images,
            images_root=images_root,
            fraction=fraction,
            seed=seed,
            epochs=options["epochs"],
            lr=options["lr"],
            batch_size=options["batch_size"],
            workers=options["workers"],
            logging_steps=options["logging_steps"],
        )
    if is_follower():  # its share of the training is done; generation and scoring are rank 0's
        return
    test = {"model_dir": model_dir, "test_prompts": options["test_prompts"], "real_root": options["real_root"]}
    tuned = [folder / f"finetune-{naming.tuned(f, s)}" for f, s in itertools.product(options["fractions"], seeds)]
    for finetuned in [*tuned, *([None] if options["zero_shot"] else [])]:
        ctx.invoke(generate, **where, **test, finetuned=finetuned, max_new_tokens=options["max_new_tokens"])
    ctx.invoke(
        score,
        **where,
        chexbert=options["chexbert"],
        chexbert_tokenizer=options["chexbert_tokenizer"],
        bootstrap=options["bootstrap"],
    )


COMMANDS = [run]
