"""Merge the shard parts of a generate run into one images table, after checking that every part is there."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from chexbench_common.errors import BadInputError, MissingResourceError
from chexbench_common.hashing import sha256_file
from chexbench_common.rundir import StageRun
from chexbench_schema import read_table, write_table

from .parts import IMAGES_DIR, GenerateDir
from .runner import PRODUCER
from .truncation import combine_reports

log = logging.getLogger(__name__)


def merge(stage: StageRun, num_shards: int | None = None) -> dict:
    """Check parts 0..N-1 (complete, same settings, disjoint), write images.parquet, the manifest and _SUCCESS."""
    gen = GenerateDir(stage.dir)
    manifests = gen.part_manifests()
    if not manifests:
        raise BadInputError(f"{gen.parts} holds no shard parts; run `chexbench-generate run` first")
    num_shards = num_shards or _single_shard_count(manifests, gen)
    by_index = {m["shard_index"]: m for m in manifests if m["num_shards"] == num_shards}
    unfinished = [
        k
        for k in range(num_shards)
        if by_index.get(k, {}).get("status") != "complete" or not gen.part(k, num_shards).table.exists()
    ]
    if unfinished:
        shown = ", ".join(map(str, unfinished))
        raise BadInputError(
            f"shard(s) {shown} of {num_shards} have not finished (no complete part in {gen.parts}); "
            f"run them with --num-shards {num_shards} --shard-index K, then merge again"
        )
    parts = [by_index[k] for k in range(num_shards)]
    for key in ("fingerprint", "work", "params"):
        if len({json.dumps(p[key], sort_keys=True) for p in parts}) > 1:
            raise BadInputError(
                f"the {num_shards} parts in {gen.parts} were made with different {key}; "
                "re-run the shards with identical options"
            )
    first = parts[0]
    prompts = Path(first["prompts"])
    if not prompts.is_file() or sha256_file(prompts) != first["work"]["prompts_sha256"]:
        raise MissingResourceError(f"{prompts}: the prompts table the shards used is gone or has changed")
    table = pd.concat(
        [read_table(gen.part(k, num_shards).table, "images") for k in range(num_shards)], ignore_index=True
    )
    if len(table) != first["work"]["items"]:
        raise BadInputError(f"the parts hold {len(table)} images, the run needs {first['work']['items']}")
    missing = [p for p in table["path"] if not (gen.images / p).is_file()]
    if missing:
        raise MissingResourceError(
            f"{len(missing)} image file(s) of the parts are gone from {gen.images}, e.g. "
            f"{missing[0]}; re-run the shards to regenerate them"
        )
    inputs = {"prompts": prompts}
    stage.start(first["params"], inputs, weights=first["weights"])
    write_table(
        table,
        gen.table,
        "images",
        producer=PRODUCER,
        run_id=stage.run_id,
        extra={
            "images_root": IMAGES_DIR,
            "generator": first["params"]["model"],
            "fingerprint": first["fingerprint"],
            "num_shards": num_shards,
        },
    )
    stray = sorted({p.name for p in gen.images.glob("*.png")} - set(table["path"]))
    if stray:
        log.warning("%d PNG file(s) in %s are not part of this run (an earlier, larger run?)", len(stray), gen.images)
    stage.update(
        truncation=combine_reports([p["truncation"] for p in parts]),
        counts={
            "images": len(table),
            "prompts": int(table["prompt_id"].nunique()),
            "num_shards": num_shards,
            "generated": sum(p["counts"]["generated"] for p in parts),
            "reused": sum(p["counts"]["reused"] for p in parts),
            "stray_files": len(stray),
        },
        execution=[{"shard_index": p["shard_index"], **p["execution"]} for p in parts],
    )
    stage.finish({"images": gen.table, "images_dir": gen.images})
    return stage.manifest


def _single_shard_count(manifests: list[dict], gen: GenerateDir) -> int:
    counts = sorted({m["num_shards"] for m in manifests})
    if len(counts) > 1:
        raise BadInputError(f"{gen.parts} holds parts for {', '.join(map(str, counts))} shards; pass --num-shards")
    return counts[0]
