"""`chexbench-embed run`: image sets in, one embeddings table per (source, extractor) out."""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from chexbench_common.device import select_device
from chexbench_common.errors import BadInputError, BadRowsError, ImageDecodeError
from chexbench_common.hashing import sha256_file
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.rundir import StageRun
from chexbench_common.sharding import Shard
from chexbench_schema import write_embeddings

from . import __version__
from .cache import EmbeddingCache, HashMemo
from .engine import Options, extract
from .extractors import ExtractorSpec, build_spec, load_encoder, parse_request
from .inputs import Source, read_real, read_synthetic

log = logging.getLogger(__name__)
STAGE = "embed"
PRODUCER = f"chexbench-embed {__version__}"
FLUSH_EVERY = 2048  # cache new real vectors in packs of this many, so an interrupted run keeps its work


@dataclass
class Request:
    results: Path
    model: str
    run_id: str
    extractors: list[str]
    images: tuple[Path, Path] | None = None  # (images table, images root)
    prompts: tuple[Path, Path] | None = None  # (prompts table, real images root)
    options: Options = field(default_factory=Options)
    device: str = "auto"
    cache_dir: Path | None = None  # None: no cache
    shard: Shard = field(default_factory=Shard)
    force: bool = False


def output_name(source: str, extractor: str) -> str:
    return f"{source}-{extractor}.parquet"


def write_output(path: Path, frame: pd.DataFrame, vectors: np.ndarray, meta: dict, run_id: str) -> Path:
    """Write one embeddings table; `meta` holds extractor, weights_sha256, preprocessing and extra keys."""
    extra = {k: v for k, v in meta.items() if k not in ("extractor", "weights_sha256", "preprocessing", "dim")}
    return write_embeddings(
        frame,
        vectors,
        path,
        producer=PRODUCER,
        extractor=meta["extractor"],
        weights_sha256=meta["weights_sha256"],
        preprocessing=meta["preprocessing"],
        run_id=run_id,
        extra=extra,
    )


def check_table_hashes(source: Source, hashes: list[str]) -> None:
    """Refuse image files whose sha256 differs from the images table's `sha256` column (every mismatch listed)."""
    if source.expected_sha256 is None:
        return
    problems = [
        f"{where}: {path.name} has sha256 {got[:12]}..., the table says {want[:12]}...; the file changed after the "
        "table was written: re-run generate (it regenerates damaged images) or re-import the images"
        for where, path, got, want in zip(source.where, source.paths, hashes, source.expected_sha256, strict=True)
        if want is not None and got != want
    ]
    if problems:
        raise BadRowsError(str(source.table), [p.removeprefix(f"{source.table.name} ") for p in problems])


def content_digest(hashes: list[str]) -> str:
    """One sha256 over a set's image-file hashes in table order: part of the skip key, so a replaced image counts."""
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def hash_files(source: Source, threads: int, memo: HashMemo) -> list[str]:
    """sha256 of every image file of `source`, from the memo where the file is unchanged (threads for the rest)."""

    def one(row: int) -> str:
        path = source.paths[row]
        known = memo.get(path)
        if known is not None:
            return known
        try:
            digest = sha256_file(path)
            memo.put(path, digest)
            return digest
        except OSError as exc:
            raise ImageDecodeError(f"{source.where[row]}: {path}: cannot read: {exc.strerror}") from None

    with ThreadPoolExecutor(max(1, threads)) as pool:
        hashes = list(pool.map(one, range(len(source))))
    memo.save()
    return hashes


class _CacheWriter:
    """Stores newly extracted vectors of one source in packs as the pass goes."""

    def __init__(
        self, caches: dict[str, EmbeddingCache], hashes: list[str], outputs: dict[str, np.ndarray], depths: dict
    ):
        self.caches, self.hashes, self.outputs, self.depths = caches, hashes, outputs, depths
        self.pending: dict[str, list[int]] = {name: [] for name in caches}

    def __call__(self, name: str, rows: list[int]) -> None:
        self.pending[name].extend(rows)
        if len(self.pending[name]) >= FLUSH_EVERY:
            self.flush(name)

    def flush(self, name: str) -> None:
        rows, self.pending[name] = self.pending[name], []
        self.caches[name].store(
            [self.hashes[r] for r in rows], self.outputs[name][rows], [self.depths[r] for r in rows]
        )


def _embed_source(
    source: Source, hashes: list[str], specs: list[ExtractorSpec], encoders: dict, device, req: Request
) -> tuple:
    """(vectors by table, counts) for one source; real sets go through the cache when one is configured.

    Every table (ExtractorSpec.tables) has its own cache key; an extractor runs on the rows any of its tables lacks."""
    n = len(source)
    tables = [t for s in specs for t in s.tables()]
    outputs = {t.name: np.zeros((n, t.dim), np.float32) for t in tables}
    missing = {t.name: np.ones(n, bool) for t in tables}
    depths: dict = {}  # row -> DepthInfo, from the cache or the decoding (the bit-depth warning's evidence)
    writer = None
    if source.kind == "real" and req.cache_dir is not None:
        precision, depth = req.options.precision, req.options.bit_depth["real"]
        caches = {
            t.name: EmbeddingCache(req.cache_dir, t.cache_key(precision, depth), t.cache_record(precision, depth))
            for t in tables
        }
        for t in tables:
            outputs[t.name], found, cached = caches[t.name].lookup(hashes, t.dim)
            missing[t.name] = ~found
            depths.update(cached)
        writer = _CacheWriter(caches, hashes, outputs, depths)
    needs = {s.name: np.logical_or.reduce([missing[t.name] for t in s.tables()]) for s in specs}
    for s in specs:
        if needs[s.name].any() and s.name not in encoders:
            encoders[s.name] = (s.transform, load_encoder(s, device))
    active = {s.name: encoders[s.name] for s in specs if needs[s.name].any()}
    extract(source, active, {k: needs[k] for k in active}, outputs, device, req.options, writer, depths)
    if writer is not None:
        for t in tables:
            writer.flush(t.name)
    counts = {
        t.name: {"rows": n, "extracted": int(needs[s.name].sum()), "cached": int(n - needs[s.name].sum())}
        for s in specs
        for t in s.tables()
    }
    return outputs, counts


def _check_request(req: Request, device) -> None:
    if req.images is None and req.prompts is None:
        raise BadInputError("nothing to embed: give --images with --images-root, and/or --prompts with --real-root")
    if req.options.precision == "fp16" and device.type == "cpu":
        raise BadInputError("--precision fp16 needs a GPU; use fp32 or bf16 on the CPU")


def _read_sources(req: Request) -> tuple[list[Source], dict[str, int]]:
    """This shard's slice of every requested set, and each set's full row count."""
    sources = ([read_real(*req.prompts)] if req.prompts else []) + ([read_synthetic(*req.images)] if req.images else [])
    for src in sources:
        if not len(src):
            raise BadInputError(f"{src.table}: the table has no rows to embed")
    totals = {src.kind: len(src) for src in sources}
    return [s.select(req.shard.slice(len(s))) for s in sources], totals


def run(req: Request) -> tuple[StageRun, bool]:
    """Embed every requested source with every extractor; returns (stage, whether anything was done)."""
    device = select_device(req.device)
    _check_request(req, device)
    names = [parse_request(text) for text in req.extractors]
    duplicated = sorted({n for n, _ in names if [m for m, _ in names].count(n) > 1})
    if not names or duplicated:
        raise BadInputError(f"give each extractor once with --extractor (repeated: {', '.join(duplicated) or 'none'})")
    specs = [build_spec(name, path) for name, path in names]
    stage = StageRun(req.results, req.model, req.run_id, req.shard.stage(STAGE), tool_version=__version__)
    parent = (
        StageRun(req.results, req.model, req.run_id, STAGE, tool_version=__version__) if req.shard.sharded else None
    )
    with Lifecycle(stage, force=req.force, parent=parent) as life:
        sources, totals = _read_sources(req)
        memo = HashMemo(req.cache_dir / "file-hashes.json" if req.cache_dir is not None else None)
        hashes = {src.kind: hash_files(src, req.options.num_workers or 1, memo) for src in sources}
        for src in sources:
            check_table_hashes(src, hashes[src.kind])
        params = {
            "extractors": {
                s.name: {"weights_sha256": s.weights_sha256, "preprocessing": s.preprocessing()} for s in specs
            },
            "precision": req.options.precision,
            "bit_depth": req.options.bit_depth,
            "images_root": str(req.images[1]) if req.images else None,
            "real_root": str(req.prompts[1]) if req.prompts else None,
            **req.shard.describe(content_sha256={kind: content_digest(h) for kind, h in hashes.items()}),
        }
        inputs = {k: v[0] for k, v in (("images", req.images), ("prompts", req.prompts)) if v}
        if life.up_to_date(params, inputs):
            log.info("%s is up to date; nothing to do (use --force to redo it)", stage.dir)
            return stage, False
        tables = [t for s in specs for t in s.tables()]
        targets = {f"{src.kind}-{t.name}": stage.dir / output_name(src.kind, t.name) for src in sources for t in tables}
        life.start(params, inputs, weights={s.name: s.weights_sha256 for s in specs}, clear=list(targets.values()))
        encoders: dict = {}
        results, counts = {}, {}
        for src in sources:  # every vector is computed before any table is written: a failure leaves no table
            results[src.kind], counts[src.kind] = _embed_source(src, hashes[src.kind], specs, encoders, device, req)
        for src in sources:
            frame = pd.DataFrame({"image_id": src.image_ids, "source": src.kind, "prompt_id": src.prompt_ids})
            for t in tables:
                meta = t.metadata(req.options.precision) | {
                    "source": src.kind,
                    "bit_depth": req.options.bit_depth[src.kind],
                }
                write_output(
                    targets[f"{src.kind}-{t.name}"],
                    frame.assign(extractor=t.name),
                    results[src.kind][t.name],
                    meta,
                    req.run_id,
                )
        life.update(
            counts=counts,
            totals=totals,
            device=str(device),
            batch_size=req.options.batch_size,
            num_workers=req.options.num_workers,
        )
        life.finish(targets)
    return stage, True


def default_workers() -> int:
    """Decoding workers: the CPUs this process may use, at most 8."""
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
