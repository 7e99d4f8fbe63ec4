"""What to generate: one work item per (prompt, sample index), its seed, its file name and its shard."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
from chexbench_common.errors import BadInputError
from chexbench_common.sharding import Shard

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


def shard_items(items: list[Item], shard: Shard) -> list[Item]:
    """The items of one shard: its contiguous run of prompts (the common assignment rule), all their samples."""
    prompts = list(dict.fromkeys(item.prompt_id for item in items))
    mine = set(prompts[shard.slice(len(prompts))])
    return [item for item in items if item.prompt_id in mine]
