"""`finetune` and `generate` in the legacy environment: the same stage folders, lifecycle and predictions table as
the native path, the work done by LLaVA-Rad's own entry points (translation.py builds their inputs and commands)."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from chexbench_common.atomic import atomic_path
from chexbench_common.errors import BadInputError, ChexbenchError, MissingResourceError
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.rundir import StageRun, is_finished
from chexbench_llava_report import prompting
from chexbench_llava_report.data import sample_fraction, test_images, training_pairs
from chexbench_schema.manifest import read_manifest

from . import __version__, translation

log = logging.getLogger(__name__)
PREDICTIONS, PREDICTIONS_CSV = "predictions.parquet", "predictions.csv"


@dataclass(frozen=True)
class LlavaRad:
    """Where the user's LLaVA-Rad lives: its clone (the commands run from there) and the Python that has it."""

    root: Path
    python: str

    def check(self) -> None:
        if not (self.root / "llava").is_dir():
            raise MissingResourceError(
                f"{self.root}: not a LLaVA-Rad clone (no llava/ package); pass --llava-rad-root or set LLAVA_RAD_ROOT"
            )

    def call(self, argv: list[str], what: str) -> None:
        log.info("%s: %s (in %s)", what, " ".join(argv), self.root)
        code = subprocess.run(argv, cwd=self.root, check=False).returncode
        if code != 0:
            raise ChexbenchError(f"LLaVA-Rad's {what} exited with {code}; its output is above")


@dataclass(frozen=True)
class FinetuneRequest:
    results: Path
    model: str
    run_id: str
    train_prompts: Path
    images: Path
    images_root: Path | None
    fraction: int
    seed: int
    vicuna: Path
    tower_config: Path
    tower_checkpoint: Path
    projector: Path | None
    gpus: int
    recipe: translation.Recipe
    llava: LlavaRad
    force: bool


def finetune(request: FinetuneRequest) -> tuple[StageRun, bool]:
    """LLaVA-Rad's train_mem.py on the seeded fraction of the synthetic pairs, into finetune-p<P>/llava-rad-p<P>/
    (its trainer resumes from the checkpoint-* it finds there after a kill)."""
    stage = StageRun(
        request.results,
        request.model,
        request.run_id,
        f"llava-report/finetune-p{request.fraction}",
        tool_version=__version__,
    )
    with Lifecycle(stage, force=request.force) as life:
        request.llava.check()
        pairs, without = training_pairs(request.train_prompts, request.images, request.images_root)
        chosen = sample_fraction(pairs, request.fraction, request.seed)
        params = {
            "engine": "legacy",
            "fraction": request.fraction,
            "seed": request.seed,
            "recipe": vars(request.recipe),
            "prompting": prompting.describe(),
            "gpus": request.gpus,
        }
        inputs = {
            "train_prompts": request.train_prompts,
            "images": request.images,
            "vicuna": request.vicuna,
            "tower_checkpoint": request.tower_checkpoint,
            **({"projector": request.projector} if request.projector else {}),
        }
        if life.up_to_date(params, inputs):
            return stage, False
        life.start(params, inputs)
        frame = chosen.rename(columns={"image_id": "id"}).assign(image=[str(f) for f in chosen["file"]])
        data = translation.write_records(
            translation.records(frame, prompting.INSTRUCTION, source=str(request.images)), stage.dir / "train.json"
        )
        output = stage.dir / f"{translation.MODEL_NAME_PREFIX}-p{request.fraction}"
        argv = translation.finetune_command(
            python=request.llava.python,
            gpus=request.gpus,
            data_json=data.resolve(),
            image_folder=Path("/"),  # the records hold absolute paths
            vicuna=request.vicuna.resolve(),
            tower_config=request.tower_config.resolve(),
            tower_checkpoint=request.tower_checkpoint.resolve(),
            projector=request.projector.resolve() if request.projector else None,
            output_dir=output.resolve(),
            recipe=request.recipe,
        )
        life.update(command=argv, counts={"pairs": len(chosen), "prompts_without_image": without})
        request.llava.call(argv, "training")
        life.finish({"model": output, "train_records": data})
    return stage, True


@dataclass(frozen=True)
class GenerateRequest:
    results: Path
    model: str
    run_id: str
    test_prompts: Path
    real_root: Path
    finetuned: Path
    vicuna: Path
    batch_size: int
    llava: LlavaRad
    force: bool


def generate(request: GenerateRequest) -> tuple[StageRun, bool]:
    """LLaVA-Rad's model_mimic_cxr (greedy, v1) on the real TEST images with a legacy fine-tuned model, into
    generate-p<P>/ with the same predictions table as the native path."""
    if not is_finished(request.finetuned):
        raise MissingResourceError(f"{request.finetuned}: not a finished legacy finetune folder; run finetune first")
    record = read_manifest(request.finetuned)
    if record["params"].get("engine") != "legacy":
        raise BadInputError(f"{request.finetuned}: fine-tuned natively; generate it without LLAVA_ENV=legacy")
    fraction = record["params"]["fraction"]
    stage = StageRun(
        request.results, request.model, request.run_id, f"llava-report/generate-p{fraction}", tool_version=__version__
    )
    with Lifecycle(stage, force=request.force) as life:
        request.llava.check()
        tests = test_images(request.test_prompts, request.real_root)
        model_path = Path(request.finetuned) / record["outputs"]["model"]
        params = {"engine": "legacy", "greedy": True, "max_new_tokens": 256, "prompting": prompting.describe()}
        inputs = {"test_prompts": request.test_prompts, "model": model_path, "vicuna": request.vicuna}
        if life.up_to_date(params, inputs):
            return stage, False
        life.start(params, inputs, clear=[PREDICTIONS, PREDICTIONS_CSV])
        frame = tests.rename(columns={"prompt_id": "id", "reference": "findings"}).assign(
            image=[str(f) for f in tests["file"]]
        )
        items = translation.records(frame, prompting.INSTRUCTION, source=str(request.test_prompts))
        query = translation.write_records(items, stage.dir / "test.json")
        answers = stage.dir / "llava_rad_predictions.jsonl"
        argv = translation.generate_command(
            python=request.llava.python,
            query_file=query.resolve(),
            image_folder=Path("/"),
            prediction_file=answers.resolve(),
            model_path=model_path.resolve(),
            vicuna=request.vicuna.resolve(),
            batch_size=request.batch_size,
        )
        life.update(command=argv)
        request.llava.call(argv, "inference")
        table = translation.read_predictions(answers, items)
        table = table.drop(columns="image").assign(image_path=list(tests["image_path"]), n_tokens=None)
        table = table[["prompt_id", "image_path", "reference", "generated", "n_tokens"]]
        with atomic_path(stage.dir / PREDICTIONS) as tmp:
            table.to_parquet(tmp, index=False)
        with atomic_path(stage.dir / PREDICTIONS_CSV) as tmp:
            table.to_csv(tmp, index=False)
        life.finish({"predictions": stage.dir / PREDICTIONS, "predictions_csv": stage.dir / PREDICTIONS_CSV})
    return stage, True
