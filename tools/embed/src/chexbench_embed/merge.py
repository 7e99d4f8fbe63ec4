"""`chexbench-embed merge`: check every shard finished alike, then concatenate their parts in shard order."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.errors import BadInputError, SchemaError
from chexbench_common.rundir import MANIFEST, SUCCESS, StageRun
from chexbench_schema import read_embeddings

from . import __version__
from .run import write_output
from .shards import SHARD_DIR, STAGE, shard_name

log = logging.getLogger(__name__)
TABLE_META = ("extractor", "weights_sha256", "preprocessing", "dim")


def _shard_dirs(base: Path, count: int | None) -> tuple[int, dict[int, Path]]:
    found: dict[int, dict[int, Path]] = {}
    for path in base.glob("shard-*-of-*"):
        match = SHARD_DIR.fullmatch(path.name)
        if match and path.is_dir():
            found.setdefault(int(match[2]), {})[int(match[1])] = path
    if count is None:
        if len(found) != 1:
            raise BadInputError(
                f"{base}: "
                + (
                    "no shard folders to merge"
                    if not found
                    else f"shards of several runs ({', '.join(map(str, sorted(found)))} shards); "
                    "choose one with --num-shards"
                )
            )
        count = next(iter(found))
    return count, found.get(count, {})


def _manifests(base: Path, count: int, dirs: dict[int, Path]) -> list[dict]:
    problems, manifests = [], []
    for k in range(count):
        path = dirs.get(k, base / shard_name(k, count))
        if not (path / SUCCESS).exists():
            problems.append(f"shard {k} of {count} has not finished (no {SUCCESS} in {path})")
            continue
        manifest = json.loads((path / MANIFEST).read_text())
        manifest["params"].pop("shard_index")
        manifests.append(manifest | {"dir": path})
    if problems:
        raise SchemaError(str(base), problems)
    first = manifests[0]
    for k, m in enumerate(manifests[1:], start=1):
        for key in ("params", "outputs"):
            if m[key] != first[key]:
                problems.append(f"shard {k} of {count} differs from shard 0 in its {key}; re-run it")
        if {n: i["sha256"] for n, i in m["inputs"].items()} != {n: i["sha256"] for n, i in first["inputs"].items()}:
            problems.append(f"shard {k} of {count} read different input tables than shard 0; re-run it")
    if problems:
        raise SchemaError(str(base), problems)
    return manifests


def _concat(paths: list[Path], expected: int) -> tuple[pd.DataFrame, np.ndarray, dict]:
    parts = [read_embeddings(p) for p in paths]
    meta = parts[0].metadata["extra"]
    for path, part in zip(paths, parts, strict=True):
        if any(part.metadata["extra"][k] != meta[k] for k in TABLE_META):
            raise SchemaError(str(path), ["extractor, weights or preprocessing differ from the first shard's part"])
    parts = [p for p in parts if len(p.frame)]
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    if len(frame) != expected:
        raise SchemaError(
            str(paths[0].parent.parent), [f"{len(frame)} merged rows, but the input table has {expected}"]
        )
    return frame, np.concatenate([p.vectors for p in parts]), meta


def merge(
    results: Path, model: str, run_id: str, count: int | None = None, force: bool = False
) -> tuple[StageRun, bool]:
    """Merge Results/<model>/<run_id>/embed/shard-*-of-<count>/ into embed/; returns (stage, whether it wrote)."""
    base = Path(results) / model / run_id / STAGE
    count, dirs = _shard_dirs(base, count)
    manifests = _manifests(base, count, dirs)
    outputs = manifests[0]["outputs"]
    inputs = {
        f"{shard_name(k, count)}/{name}": m["dir"] / rel
        for k, m in enumerate(manifests)
        for name, rel in outputs.items()
    }
    params = manifests[0]["params"] | {"merged_shards": count}
    stage = StageRun(results, model, run_id, STAGE, tool_version=__version__)
    if not force and stage.is_complete(params, inputs):
        log.info("%s is up to date; nothing to merge (use --force to redo it)", stage.dir)
        return stage, False
    stage.start(params, inputs)
    try:
        written = {}
        for name, rel in outputs.items():
            expected = manifests[0]["totals"][name.split("-", 1)[0]]
            frame, vectors, meta = _concat([m["dir"] / rel for m in manifests], expected)
            written[name] = write_output(base / rel, frame, vectors, meta, run_id)
        stage.finish(written)
    except BaseException as exc:
        stage.fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    return stage, True
