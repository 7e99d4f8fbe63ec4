"""What to generate: one work item per (prompt, sample index), its seed, its file name and its shard."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import pandas as pd
from chexbench_common.errors import BadInputError

SEED_SCHEME = "sha256('chexbench-generate/v1:<seed>:<prompt_id>:<sample_index>')[:8] >> 1"


@dataclass(frozen=True)
class Item:
    image_id: str
    prompt_id: str
    prompt: str
    sample_index: int
    seed: int

    @property
    def path(self) -> str:
        """File name relative to the images folder."""
        return f"{self.image_id}.png"


def image_seed(global_seed: int, prompt_id: str, sample_index: int) -> int:
    """The per-image seed: a hash of (global seed, prompt_id, sample index), 63 bits (fits an int64 column)."""
    digest = hashlib.sha256(f"chexbench-generate/v1:{global_seed}:{prompt_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def plan_items(
    prompts: pd.DataFrame, num_images_per_prompt: int, global_seed: int, limit: int | None = None
) -> list[Item]:
    """All work items, prompt-major in table order; `limit` keeps the first N prompts."""
    if limit is not None:
        if limit < 1:
            raise BadInputError(f"--limit must be at least 1, not {limit}")
        prompts = prompts.head(limit)
    return [
        Item(f"{pid}-{k}", pid, text, k, image_seed(global_seed, pid, k))
        for pid, text in zip(prompts["prompt_id"], prompts["prompt"], strict=True)
        for k in range(num_images_per_prompt)
    ]


def shard_from_env(num_shards: int | None, shard_index: int | None) -> tuple[int, int]:
    """Explicit values, else SLURM_ARRAY_TASK_COUNT / SLURM_ARRAY_TASK_ID, else a single shard."""
    env = os.environ
    if num_shards is None:
        num_shards = int(env["SLURM_ARRAY_TASK_COUNT"]) if env.get("SLURM_ARRAY_TASK_COUNT") else 1
    if shard_index is None:
        shard_index = int(env["SLURM_ARRAY_TASK_ID"]) if env.get("SLURM_ARRAY_TASK_ID") and num_shards > 1 else 0
        if env.get("SLURM_ARRAY_TASK_MIN") and num_shards > 1:  # arrays may start at 1 (--array=1-4)
            shard_index -= int(env["SLURM_ARRAY_TASK_MIN"])
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise BadInputError(f"shard index {shard_index} is not in 0..{num_shards - 1} (--num-shards {num_shards})")
    return num_shards, shard_index


def shard_items(items: list[Item], num_shards: int, shard_index: int) -> list[Item]:
    """The items of one shard: every prompt goes to shard (prompt position mod num_shards), all its samples with it."""
    order = {pid: i for i, pid in enumerate(dict.fromkeys(item.prompt_id for item in items))}
    return [item for item in items if order[item.prompt_id] % num_shards == shard_index]
