"""The whole stage in one call (`run`; what `make bench` and the Slurm template use): fine-tune on each fraction of
the synthetic pairs and each training seed, generate findings for the real TEST images with each (and zero-shot),
score them all. Each step is the library function of the command of the same name (finetune.run, generate.run,
score.run) with that command's defaults, so a finished step (e.g. a multi-GPU `finetune` launched before with
accelerate) is found up to date and skipped. Under several ranks (torchrun, or one Slurm task per GPU) every rank
fine-tunes; rank 0 alone generates and scores."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chexbench_common.rundir import StageRun, run_folder

from . import naming


@dataclass
class Request:
    results: Path
    model: str
    run_id: str
    model_dir: Path
    train_prompts: Path
    test_prompts: Path
    real_root: Path
    images: Path | None = None
    images_root: Path | None = None
    fractions: tuple[int, ...] = (10, 50, 100)  # the original's
    zero_shot: bool = True
    seed: int = 0  # the fractions' draws and training: seeds seed .. seed + seeds - 1
    seeds: int = 1
    epochs: float = 5.0
    lr: float = 1e-4
    batch_size: int = 16  # training, per device
    workers: int = 2
    logging_steps: int = 10
    max_new_tokens: int = 256
    chexbert: Path | None = None
    chexbert_tokenizer: Path | None = None
    bootstrap: int = 500
    device: str = "auto"
    force: bool = False

    def training_seeds(self) -> range:
        return range(self.seed, self.seed + self.seeds)


def run(request: Request, done: Callable[[StageRun, bool], None] = lambda stage, did_work: None) -> None:
    """Every step in order; `done(stage, did_work)` after each finished one (the CLI prints its outputs)."""
    from chexbench_common.distributed import torch_env_from_slurm
    from chexbench_common.env import configure_caches

    torch_env_from_slurm()
    configure_caches()
    from . import finetune, generate, score

    r = request
    where = {"results": r.results, "model": r.model, "run_id": r.run_id}
    for fraction, seed in itertools.product(r.fractions, r.training_seeds()):
        options = finetune.Options(
            fraction=fraction,
            seed=seed,
            epochs=r.epochs,
            lr=r.lr,
            batch_size=r.batch_size,
            workers=r.workers,
            logging_steps=r.logging_steps,
            device=r.device,
        )
        step = finetune.Request(
            **where,
            model_dir=r.model_dir,
            train_prompts=r.train_prompts,
            images=r.images,
            images_root=r.images_root,
            options=options,
            force=r.force,
        )
        if finetune.is_follower():
            finetune.follow(step)
        else:
            done(*finetune.run(step))
    if finetune.is_follower():  # its share of the training is done; generation and scoring are rank 0's
        return
    folder = run_folder(r.results, r.model, r.run_id) / "llava-report"
    tuned = [folder / f"finetune-{naming.tuned(f, s)}" for f, s in itertools.product(r.fractions, r.training_seeds())]
    for finetuned in [*tuned, *([None] if r.zero_shot else [])]:
        step = generate.Request(
            **where,
            model_dir=r.model_dir,
            test_prompts=r.test_prompts,
            real_root=r.real_root,
            finetuned=finetuned,
            max_new_tokens=r.max_new_tokens,
            device=r.device,
            force=r.force,
        )
        done(*generate.run(step))
    step = score.Request(
        **where,
        chexbert=r.chexbert,
        chexbert_tokenizer=r.chexbert_tokenizer,
        bootstrap=r.bootstrap,
        device=r.device,
        force=r.force,
    )
    done(*score.run(step))
