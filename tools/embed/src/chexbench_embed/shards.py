"""Shards: contiguous slices of each image set, one stage folder per shard, merged into one table per output.

A sharded run writes Results/<model>/<run_id>/embed/shard-<k>-of-<n>/ (its own manifest and _SUCCESS);
`chexbench-embed merge` checks that all n shards finished with the same inputs and parameters and writes the
merged tables into embed/ itself.
"""

from __future__ import annotations

import os
import re

from chexbench_common.errors import BadInputError

STAGE = "embed"
SHARD_DIR = re.compile(r"shard-(\d+)-of-(\d+)")


def shard_name(index: int, count: int) -> str:
    return f"shard-{index}-of-{count}"


def stage_name(index: int, count: int) -> str:
    """The StageRun stage for one shard: plain `embed` when unsharded."""
    return STAGE if count == 1 else f"{STAGE}/{shard_name(index, count)}"


def shard_slice(n: int, count: int, index: int) -> slice:
    """Rows of shard `index` among `count` contiguous near-equal shards (numpy.array_split boundaries)."""
    base, extra = divmod(n, count)
    start = index * base + min(index, extra)
    return slice(start, start + base + (1 if index < extra else 0))


def slurm_defaults(env=os.environ) -> tuple[int, int]:
    """(count, index) from a Slurm job array, else (1, 0); the index counts from the array's first task id."""
    if "SLURM_ARRAY_TASK_COUNT" not in env or "SLURM_ARRAY_TASK_ID" not in env:
        return 1, 0
    count = int(env["SLURM_ARRAY_TASK_COUNT"])
    first, step = int(env.get("SLURM_ARRAY_TASK_MIN", 0)), int(env.get("SLURM_ARRAY_TASK_STEP", 1))
    return count, (int(env["SLURM_ARRAY_TASK_ID"]) - first) // step


def check_shard(count: int, index: int) -> None:
    if count < 1 or not 0 <= index < count:
        raise BadInputError(f"shard index {index} is not in 0..{count - 1} (--num-shards {count})")
