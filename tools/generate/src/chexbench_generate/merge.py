"""Merge the shard parts of a generate run into one images table, after checking every part and every image."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from chexbench_common.errors import IncompleteShardsError, MissingResourceError
from chexbench_common.hashing import sha256_file
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.rundir import StageRun
from chexbench_common.sharding import finished_parts, merged_params
from chexbench_schema import read_table, write_table

from . import __version__
from .parts import IMAGES_DIR, LEDGER, TABLE, GenerateDir, read_records, verify
from .runner import PRODUCER
from .truncation import combine_reports

log = logging.getLogger(__name__)
RUN_SHARD = "chexbench-generate run <same options>"


def merge(
    results: Path, model: str, run_id: str, num_shards: int | None = None, verify_mode: str = "fast", force=False
) -> tuple[StageRun, bool]:
    """Check parts 0..N-1 (finished, same settings, images intact), then write images.parquet; (stage, did work)."""
    stage = StageRun(results, model, run_id, "generate", tool_version=__version__)
    with Lifecycle(stage, force=force) as life:
        gen = GenerateDir(stage.dir)
        parts = finished_parts(stage.dir, RUN_SHARD, num_shards)
        first = parts[0]
        prompts = Path(first["prompts"])
        if not prompts.is_file() or sha256_file(prompts) != first["work"]["prompts_sha256"]:
            raise MissingResourceError(f"{prompts}: the prompts table the shards used is gone or has changed")
        tables = [read_table(p["dir"] / TABLE, "images") for p in parts]
        _check_images(gen, parts, tables, verify_mode)
        table = pd.concat(tables, ignore_index=True)
        inputs = {"prompts": prompts, **{p["dir"].name: p["dir"] / TABLE for p in parts}}
        params = merged_params(parts)
        if life.up_to_date(params, inputs) and gen.table.exists():
            return stage, False
        life.start(params, inputs, weights=first["weights"], clear=[gen.table])
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
                "num_shards": len(parts),
            },
        )
        stray = sorted({p.name for p in gen.images.glob("*.png")} - set(table["path"]))
        if stray:
            log.warning(
                "%d PNG file(s) in %s are not part of this run (an earlier, larger run?)", len(stray), gen.images
            )
        life.update(
            truncation=combine_reports([p["truncation"] for p in parts]),
            counts={
                "images": len(table),
                "prompts": int(table["prompt_id"].nunique()),
                "num_shards": len(parts),
                "generated": sum(p["counts"]["generated"] for p in parts),
                "reused": sum(p["counts"]["reused"] for p in parts),
                "stray_files": len(stray),
            },
            execution=[{"shard_index": p["params"]["part"]["shard_index"], **p["execution"]} for p in parts],
        )
        life.finish({"images": gen.table, "images_dir": gen.images})
    return stage, True


def _check_images(gen: GenerateDir, parts: list[dict], tables: list[pd.DataFrame], mode: str) -> None:
    """Every image of every part is intact; else name the shards to re-run (they regenerate exactly those)."""
    damaged: dict[int, list[str]] = {}
    for part, table in zip(parts, tables, strict=True):
        ledger = read_records([part["dir"] / LEDGER], part["fingerprint"])
        records = [  # the table's sha256 is authoritative; the ledger adds size and time for the fast check
            {**ledger.get(i, {}), "image_id": i, "path": p, "sha256": h}
            for i, p, h in zip(table["image_id"], table["path"], table["sha256"], strict=True)
        ]
        intact = {r["image_id"] for r in verify(gen.images, records, mode)}
        bad = [r["path"] for r in records if r["image_id"] not in intact]
        if bad:
            damaged[part["params"]["part"]["shard_index"]] = bad
    if damaged:
        count = sum(map(len, damaged.values()))
        shards = ", ".join(map(str, sorted(damaged)))
        example = next(iter(damaged.values()))[0]
        raise IncompleteShardsError(
            f"{count} image(s) in {gen.images} are missing or damaged (e.g. {example}); re-run shard(s) {shards} "
            f"with `{RUN_SHARD}` (they regenerate exactly those images), then merge again"
        )
