"""The generate folder: images/, per-shard parts (manifest, append-only ledger, final table) and their checks.

A shard appends one JSON line per finished image to its ledger (after the PNG is in place, then fsync), so a kill
loses at most the batch in flight. On resume a ledger record counts only if its file still has the recorded
sha256 and decodes.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from chexbench_common.atomic import write_json_atomic
from chexbench_common.errors import ImageDecodeError
from chexbench_common.hashing import sha256_file
from chexbench_common.imageio import load_grey

IMAGES_DIR = "images"
TABLE = "images.parquet"


class GenerateDir:
    """Results/<model>/<run_id>/generate/."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.images = self.root / IMAGES_DIR
        self.table = self.root / TABLE
        self.parts = self.root / "parts"

    def part(self, shard_index: int, num_shards: int) -> Part:
        return Part(self.parts / f"part-{shard_index:05d}-of-{num_shards:05d}")

    def part_manifests(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.parts.glob("part-*.json"))]

    def ledgers(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.jsonl"))


class Part:
    """One shard's files: <stem>.json (manifest), <stem>.jsonl (ledger), <stem>.parquet (its images table)."""

    def __init__(self, stem: Path):
        self.manifest = stem.with_suffix(".json")
        self.ledger = stem.with_suffix(".jsonl")
        self.table = stem.with_suffix(".parquet")

    def read_manifest(self) -> dict:
        return json.loads(self.manifest.read_text()) if self.manifest.exists() else {}

    def write_manifest(self, manifest: dict) -> None:
        write_json_atomic(self.manifest, manifest)


def append_records(ledger: Path, records: list[dict]) -> None:
    """Append records as JSON lines and fsync them."""
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with open(ledger, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        fh.flush()
        os.fsync(fh.fileno())


def read_records(ledgers: list[Path], fingerprint: str) -> dict[str, dict]:
    """The last record per image_id across ledgers, for this fingerprint; a torn last line is skipped."""
    found: dict[str, dict] = {}
    for ledger in ledgers:
        for line in ledger.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("fingerprint") == fingerprint:
                found[record["image_id"]] = record
    return found


def _intact(images: Path, record: dict) -> bool:
    path = images / record["path"]
    try:
        if not path.is_file() or sha256_file(path) != record["sha256"]:
            return False
        load_grey(path)
    except (OSError, ImageDecodeError):
        return False
    return True


def verify(images: Path, records: list[dict], workers: int = 4) -> list[dict]:
    """The records whose file exists, has the recorded sha256 and decodes."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ok = list(pool.map(lambda r: _intact(images, r), records))
    return [r for r, good in zip(records, ok, strict=True) if good]


def remove_stale_temporaries(images: Path, names: set[str]) -> int:
    """Delete temporary files a killed writer left for the given image file names (other shards' are untouched)."""
    removed = 0
    if images.is_dir():
        for tmp in images.glob(".*.tmp"):
            # atomic_path names them .<target name>.<random>.tmp
            if tmp.name[1:].rsplit(".", 2)[0] in names:
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed
