"""The one sharding scheme of every sharded stage: one Slurm parser, one assignment rule, one parts layout, one merge
check with one set of exit codes.

- Sharding happens only when asked: `--shard auto` (read a Slurm job array) or `--num-shards N --shard-index K`.
  Slurm variables alone never shard a run (a job array that runs one model per task must not split itself).
- Assignment: shard K of N takes the K-th of N contiguous, near-equal runs of the stage's work units in table order
  (numpy.array_split boundaries), so a merge is a concatenation in shard order.
- Layout: <stage dir>/parts/shard-<K>-of-<N>/, each a stage folder of its own (manifest.json, _SUCCESS, lock).
- Params: what only one shard has (its index, the hash of its slice of the inputs) goes under params["part"]
  (Shard.describe); everything else must be equal across the shards.
- Merge: every shard must be finished (else IncompleteShardsError, exit 5, naming the shards and how to run them)
  and agree on params and inputs (else BadInputError, exit 3).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chexbench_schema.manifest import read_manifest

from .errors import BadInputError, IncompleteShardsError
from .rundir import is_finished

log = logging.getLogger(__name__)
PARTS = "parts"
SHARD_DIR = re.compile(r"shard-(\d+)-of-(\d+)")
SLURM_VARS = ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP")


@dataclass(frozen=True)
class Shard:
    """Which part of the work this process does: `index` of `count` (count 1: everything, no parts folder)."""

    count: int = 1
    index: int = 0

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise BadInputError(f"shard index {self.index} is not in 0..{self.count - 1} (--num-shards {self.count})")

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def stage(self, stage: str) -> str:
        """The StageRun stage name this shard writes: `<stage>` unsharded, else `<stage>/parts/shard-K-of-N`."""
        return f"{stage}/{PARTS}/{self.name}" if self.sharded else stage

    def slice(self, n: int) -> slice:
        """This shard's contiguous run of `n` work units (numpy.array_split boundaries)."""
        base, extra = divmod(n, self.count)
        start = self.index * base + min(self.index, extra)
        return slice(start, start + base + (1 if self.index < extra else 0))

    def describe(self, **facts) -> dict:
        """The `part` entry of a stage's params: what only this shard has (its index, and e.g. its content hash)."""
        return {"part": {"num_shards": self.count, "shard_index": self.index, **facts}}


def from_slurm(env: Mapping[str, str] = os.environ) -> Shard:
    """The shard of this Slurm array task: index = (TASK_ID - TASK_MIN) / TASK_STEP among TASK_COUNT tasks."""
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        raise BadInputError(
            "--shard auto needs a Slurm job array (SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set); "
            "outside one, give --num-shards N --shard-index K"
        )
    try:
        count, task = int(env["SLURM_ARRAY_TASK_COUNT"]), int(env["SLURM_ARRAY_TASK_ID"])
        first, step = int(env.get("SLURM_ARRAY_TASK_MIN", "0")), int(env.get("SLURM_ARRAY_TASK_STEP", "1"))
    except ValueError:
        shown = ", ".join(f"{k}={env[k]!r}" for k in SLURM_VARS if k in env)
        raise BadInputError(f"--shard auto: Slurm array variables are not integers ({shown})") from None
    if step < 1 or (task - first) % step:
        raise BadInputError(f"--shard auto: task id {task} is not on the array's grid (min {first}, step {step})")
    return Shard(count, (task - first) // step)


def resolve(mode: str | None, num_shards: int | None, shard_index: int | None, env=os.environ) -> Shard:
    """The shard asked for on the command line: `--shard auto`, explicit numbers, or none (the whole run)."""
    explicit = num_shards is not None or shard_index is not None
    if mode == "auto":
        if explicit:
            raise BadInputError("give either --shard auto or --num-shards/--shard-index, not both")
        return from_slurm(env)
    if explicit:
        if num_shards is None or shard_index is None:
            raise BadInputError("--num-shards and --shard-index go together (or use --shard auto in a Slurm array)")
        return Shard(num_shards, shard_index)
    if "SLURM_ARRAY_TASK_ID" in env:
        log.info("a Slurm job array is set but --shard auto was not given: this task does the whole run")
    return Shard()


def _finished(folder: Path) -> dict | None:
    return read_manifest(folder) if is_finished(folder) else None


def shard_counts(stage_dir: str | Path) -> dict[int, dict[int, Path]]:
    """{N: {K: folder}} of every parts/shard-K-of-N folder under a stage folder."""
    found: dict[int, dict[int, Path]] = {}
    for path in sorted((Path(stage_dir) / PARTS).glob("shard-*-of-*")):
        match = SHARD_DIR.fullmatch(path.name)
        if match and path.is_dir():
            found.setdefault(int(match[2]), {})[int(match[1])] = path
    return found


def finished_parts(stage_dir: str | Path, command: str, num_shards: int | None = None) -> list[dict]:
    """The manifests (with `dir`) of shards 0..N-1, all finished and made alike; refuses anything else.

    `command` is how a shard is run (e.g. "chexbench-embed run ..."), for the advice in the messages.
    """
    stage_dir = Path(stage_dir)
    found = shard_counts(stage_dir)
    if num_shards is None:
        if len(found) != 1:
            what = (
                f"no shard folders under {stage_dir / PARTS}"
                if not found
                else f"shards of several runs ({', '.join(map(str, sorted(found)))} shards); choose one with "
                "--num-shards"
            )
            raise BadInputError(f"{stage_dir}: {what}")
        num_shards = next(iter(found))
    dirs = found.get(num_shards, {})
    manifests, unfinished = [], []
    for k in range(num_shards):
        folder = dirs.get(k, stage_dir / PARTS / Shard(num_shards, k).name)
        manifest = _finished(folder)
        if manifest is None:
            unfinished.append(k)
        else:
            manifests.append(manifest | {"dir": folder})
    if unfinished:
        raise IncompleteShardsError(
            f"{stage_dir}: shard(s) {', '.join(map(str, unfinished))} of {num_shards} have not finished "
            f"(no _SUCCESS in {stage_dir / PARTS}/shard-K-of-{num_shards}); run them with `{command} "
            f"--num-shards {num_shards} --shard-index K` (or --shard auto in the job array), then merge again"
        )
    problems = []
    first = manifests[0]
    for k, m in enumerate(manifests[1:], start=1):
        if _without_shard(m["params"]) != _without_shard(first["params"]):
            problems.append(f"shard {k} of {num_shards} was run with other parameters than shard 0")
        if _input_hashes(m) != _input_hashes(first):
            problems.append(f"shard {k} of {num_shards} read other input tables than shard 0")
    if problems:
        raise BadInputError(
            "\n".join(f"{stage_dir}: {p}; re-run it with the same options as the others" for p in problems)
        )
    return manifests


def _without_shard(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != "part"}


def _input_hashes(manifest: dict) -> dict:
    return {name: item.get("sha256") for name, item in manifest.get("inputs", {}).items()}


def merged_params(manifests: list[dict]) -> dict:
    """The params a merge records: the shards' common params plus the shard count."""
    return _without_shard(manifests[0]["params"]) | {"merged_shards": len(manifests)}
