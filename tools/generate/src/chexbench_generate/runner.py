"""Generate one shard: plan, skip verified images, load the pipeline, run fixed-shape batches, record each image."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
from chexbench_common.errors import BadInputError, OutOfMemoryError
from chexbench_common.faults import fault_point
from chexbench_common.imageio import save_png
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.progress import Progress
from chexbench_common.rundir import StageRun
from chexbench_common.sharding import PARTS, Shard
from chexbench_schema import read_table, write_table

from . import __version__
from .loading import ModelFiles, check_call_kwargs, load_pipeline
from .parts import (
    LEDGER,
    TABLE,
    GenerateDir,
    append_records,
    file_facts,
    read_records,
    remove_stale_temporaries,
    verify,
)
from .plan import SEED_SCHEME, Item, plan_items, shard_items
from .settings import Settings, fingerprint
from .truncation import count_truncated

log = logging.getLogger(__name__)
PRODUCER = f"chexbench-generate {__version__}"


@dataclass(frozen=True)
class Job:
    files: ModelFiles
    settings: Settings
    model_name: str
    prompts: Path
    results: Path
    run_id: str
    device: str = "auto"
    limit: int | None = None
    shard: Shard = Shard()
    verify: str = "fast"
    force: bool = False

    @property
    def stage(self) -> StageRun:
        return StageRun(self.results, self.model_name, self.run_id, "generate", tool_version=__version__)

    @property
    def part_stage(self) -> StageRun:
        """This shard's own stage folder, generate/parts/shard-K-of-N/ (also for a single shard)."""
        return StageRun(
            self.results, self.model_name, self.run_id, f"generate/{PARTS}/{self.shard.name}", tool_version=__version__
        )

    @cached_property
    def weights(self) -> dict:
        return self.files.identity()

    @cached_property
    def params(self) -> dict:
        """The stage params: everything that defines the run's images (not batch size, device or sharding)."""
        spec, s = self.files.spec, self.settings
        return {
            "mode": "generate",
            "model": spec.name,
            "pipeline": spec.pipeline,
            "assembly": spec.assembly,
            "settings": s.pixel_settings(),
            "num_images_per_prompt": s.num_images_per_prompt,
            "limit": self.limit,
            "seed_scheme": SEED_SCHEME,
            "weights": {k: v for k, v in self.weights.items() if "fingerprint" in k or "sha256" in k},
        }

    @property
    def fingerprint(self) -> str:
        """Identifies interchangeable images: same model, weights and pixel settings."""
        return fingerprint({k: self.params[k] for k in ("model", "settings", "weights")})


def run_shard(job: Job) -> tuple[dict, bool]:
    """Generate the job's shard (or verify that it is complete); returns (its part manifest, whether it did work).

    The pipeline is loaded only when some image of the shard is missing or damaged; those are regenerated, the
    intact ones reused."""
    spec, s = job.files.spec, job.settings
    check_call_kwargs(spec, s.call_kwargs)
    part_stage = job.part_stage
    with Lifecycle(part_stage, force=job.force, parent=job.stage) as life:
        items = plan_items(read_table(job.prompts, "prompts"), s.num_images_per_prompt, s.seed, job.limit)
        if not items:
            raise BadInputError(f"{job.prompts}: the prompts table has no rows")
        gen = GenerateDir(job.stage.dir)
        _check_compatible(job, gen)
        mine = shard_items(items, job.shard)
        params, inputs = {**job.params, **job.shard.describe()}, {"prompts": job.prompts}
        done = _verified_records(job, gen, mine)
        todo = [item for item in mine if item.image_id not in done]
        if not todo and life.up_to_date(params, inputs) and (part_stage.dir / TABLE).exists():
            return part_stage.read_manifest(), False

        from chexbench_common.device import select_device

        device = select_device(job.device)
        pipe = load_pipeline(job.files, s.dtype, device)
        truncation = count_truncated(spec.budgets(pipe, s.call_kwargs), {i.prompt_id: i.prompt for i in mine})
        _warn_truncation(truncation)
        life.start(params, inputs, weights=job.weights, clear=[TABLE])
        counts = {"items": len(mine), "reused": len(done), "generated": 0}
        execution = {"batch_size": s.batch_size, "device": str(device), "host": socket.gethostname(), "started": _now()}
        life.update(
            fingerprint=job.fingerprint,
            prompts=str(job.prompts.resolve()),
            work={"prompts_sha256": part_stage.manifest["inputs"]["prompts"]["sha256"], "items": len(items)},
            truncation=truncation,
            counts=counts,
            execution=execution,
        )
        started = time.monotonic()
        for record in _generate(pipe, todo, job, gen, part_stage.dir / LEDGER):
            done[record["image_id"]] = record
            counts["generated"] += 1
        seconds = time.monotonic() - started
        write_table(
            _part_frame(mine, done, job),
            part_stage.dir / TABLE,
            "images",
            producer=PRODUCER,
            run_id=job.run_id,
            extra={"images_root": "../../images", "fingerprint": job.fingerprint},
        )
        execution.update(
            ended=_now(),
            seconds=round(seconds, 3),
            images_per_second=round(len(todo) / seconds, 4) if todo and seconds > 0 else None,
        )
        life.update(counts=counts, execution=execution)
        life.finish({"images": part_stage.dir / TABLE})
        return part_stage.manifest, True


def _verified_records(job: Job, gen: GenerateDir, mine: list[Item]) -> dict[str, dict]:
    """Ledger records (any shard's, same fingerprint) of this shard's images whose files are intact."""
    remove_stale_temporaries(gen.images, {item.path for item in mine})
    records = read_records(gen.ledgers(), job.fingerprint)
    intact = verify(gen.images, [records[i.image_id] for i in mine if i.image_id in records], job.verify)
    return {r["image_id"]: r for r in intact}


def _check_compatible(job: Job, gen: GenerateDir) -> None:
    """Refuse to mix images made with other settings or weights, or a run that imported its images."""
    if job.stage.read_manifest().get("params", {}).get("mode") == "import":
        raise BadInputError(f"{gen.root} holds imported images; generate into another --run-id")
    params = job.params
    for other in gen.part_manifests():
        if other.get("fingerprint") != job.fingerprint:
            old = other.get("params", {})
            changed = sorted(
                k
                for k in {**old.get("settings", {}), **params["settings"]}
                if old.get("settings", {}).get(k) != params["settings"].get(k)
            )
            if old.get("weights") != params["weights"] or old.get("model") != params["model"]:
                changed.append("model weights")
            raise BadInputError(
                f"{gen.root} already holds images made with other settings (changed: "
                f"{', '.join(changed) or 'unknown'}); use another --run-id or remove that folder"
            )


def _generate(pipe, todo: list[Item], job: Job, gen: GenerateDir, ledger: Path):
    """Yield one ledger record per finished image; the record is on disk (fsync) before it is yielded."""
    s = job.settings
    with Progress(
        total=len(todo), desc=f"generate {job.model_name} shard {job.shard.index}/{job.shard.count}", unit="img"
    ) as progress:
        for start in range(0, len(todo), s.batch_size):
            batch = todo[start : start + s.batch_size]
            records = []
            for item, image in zip(batch, generate_batch(pipe, batch, s), strict=True):
                if image.size != (s.width, s.height):
                    raise BadInputError(
                        f"{job.files.spec.name}: the pipeline returned {image.size[0]}x{image.size[1]} "
                        f"images for a {s.width}x{s.height} request"
                    )
                path = save_png(image, gen.images / item.path)
                records.append(
                    {
                        "image_id": item.image_id,
                        "prompt_id": item.prompt_id,
                        "sample_index": item.sample_index,
                        "seed": item.seed,
                        "path": item.path,
                        **file_facts(path),
                        "width": s.width,
                        "height": s.height,
                        "batch_size": s.batch_size,
                        "fingerprint": job.fingerprint,
                    }
                )
            append_records(ledger, records)
            progress.update(len(batch))
            yield from records
            fault_point("generate:batch")


def generate_batch(pipe, batch: list[Item], s: Settings) -> list:
    """Run one batch with one generator per image. A short last batch is padded to the batch size, so an image's
    pixels never depend on which other images shared its batch (only the batch size matters, at rounding level)."""
    import torch

    pad = s.batch_size - len(batch)
    prompts = [item.prompt for item in batch] + [batch[-1].prompt] * pad
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in [item.seed for item in batch] + [0] * pad]
    try:
        out = pipe(
            prompt=prompts,
            height=s.height,
            width=s.width,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            generator=generators,
            num_images_per_prompt=1,
            output_type="pil",
            **s.call_kwargs,
        )
    except torch.OutOfMemoryError:
        raise _oom(s) from None
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
            raise _oom(s) from None
        raise
    except ValueError as exc:
        raise BadInputError(f"{type(pipe).__name__} rejected the settings: {str(exc).splitlines()[0]}") from None
    return out.images[: len(batch)]


def _oom(s: Settings) -> OutOfMemoryError:
    advice = (
        f"re-run with a smaller --batch-size (e.g. --batch-size {s.batch_size // 2})"
        if s.batch_size > 1
        else "batch size 1 already: use a larger GPU or a smaller --height/--width"
    )
    return OutOfMemoryError(
        f"out of memory at batch size {s.batch_size} ({s.width}x{s.height}, {s.dtype}); {advice}; "
        "finished images are kept and skipped on the re-run"
    )


def _part_frame(mine: list[Item], done: dict[str, dict], job: Job) -> pd.DataFrame:
    s = job.settings
    rows = [done[item.image_id] for item in mine]
    frame = pd.DataFrame(rows, columns=["image_id", "prompt_id", "path", "seed", "sample_index", "width", "height"])
    frame.insert(2, "model", job.model_name)
    return frame.assign(steps=s.steps, guidance=s.guidance, dtype=s.dtype, sha256=[r["sha256"] for r in rows])


def _warn_truncation(report: list[dict]) -> None:
    for entry in report:
        if entry["truncated"]:
            log.warning(
                "%d of %d prompts exceed the %d-token limit of %s and are truncated by the pipeline",
                entry["truncated"],
                entry["prompts"],
                entry["limit"],
                entry["slot"],
            )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
