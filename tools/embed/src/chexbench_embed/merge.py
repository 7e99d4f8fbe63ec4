"""`chexbench-embed merge`: check every shard finished alike, then concatenate their parts in shard order."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.errors import SchemaError
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.rundir import StageRun
from chexbench_common.sharding import finished_parts, merged_params
from chexbench_schema import read_embeddings

from . import __version__
from .run import STAGE, write_output

log = logging.getLogger(__name__)
TABLE_META = ("extractor", "weights_sha256", "preprocessing", "dim")


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
    """Merge Results/<model>/<run_id>/embed/parts/shard-*-of-<count>/ into embed/; returns (stage, whether it wrote)."""
    stage = StageRun(results, model, run_id, STAGE, tool_version=__version__)
    with Lifecycle(stage, force=force) as life:
        manifests = finished_parts(stage.dir, "chexbench-embed run ...", count)
        outputs = manifests[0]["outputs"]
        for k, m in enumerate(manifests[1:], start=1):
            if m["outputs"] != outputs:
                raise SchemaError(str(stage.dir), [f"shard {k} wrote other tables than shard 0; re-run it"])
        inputs = {f"{m['dir'].name}/{name}": m["dir"] / rel for m in manifests for name, rel in outputs.items()}
        params = merged_params(manifests)
        if life.up_to_date(params, inputs):
            log.info("%s is up to date; nothing to merge (use --force to redo it)", stage.dir)
            return stage, False
        life.start(params, inputs, clear=list(outputs.values()))
        written = {}
        for name, rel in outputs.items():
            expected = manifests[0]["totals"][name.split("-", 1)[0]]
            frame, vectors, meta = _concat([m["dir"] / rel for m in manifests], expected)
            written[name] = write_output(stage.dir / rel, frame, vectors, meta, run_id)
        life.finish(written)
    return stage, True
