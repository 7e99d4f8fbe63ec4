"""The generate folder: images/ shared by all shards, and one stage folder per shard (the common parts layout,
generate/parts/shard-K-of-N/) holding its manifest, its append-only ledger and its images table.

A shard appends one JSON line per finished image to its ledger (after the PNG is in place, then fsync), so a kill
loses at most the batch in flight. A ledger record counts only while its file is intact: `fast` verification checks
that the file exists with the recorded size and modification time and hashes it only when the time differs; `full`
hashes and decodes every file.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from chexbench_common.errors import BadInputError, ImageDecodeError
from chexbench_common.hashing import sha256_file
from chexbench_common.imageio import load_grey
from chexbench_common.sharding import PARTS, Shard, shard_counts
from chexbench_schema.manifest import read_manifest

IMAGES_DIR = "images"
TABLE = "images.parquet"
LEDGER = "ledger.jsonl"
VERIFY_MODES = ("fast", "full")


class GenerateDir:
    """Results/<model>/<run_id>/generate/."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.images = self.root / IMAGES_DIR
        self.table = self.root / TABLE

    def part(self, shard: Shard) -> Path:
        return self.root / PARTS / shard.name

    def part_dirs(self) -> list[Path]:
        return [folder for shards in shard_counts(self.root).values() for folder in shards.values()]

    def part_manifests(self) -> list[dict]:
        found = []
        for folder in self.part_dirs():
            try:
                found.append(read_manifest(folder))
            except BadInputError:
                continue
        return found

    def ledgers(self) -> list[Path]:
        return [folder / LEDGER for folder in self.part_dirs() if (folder / LEDGER).exists()]


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


def file_facts(path: Path) -> dict:
    """What a ledger record keeps of a written file: its sha256, size and modification time."""
    st = path.stat()
    return {"sha256": sha256_file(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _intact(images: Path, record: dict, mode: str) -> bool:
    path = images / record["path"]
    try:
        st = path.stat()
        if "bytes" in record and st.st_size != record["bytes"]:
            return False
        if mode == "fast" and record.get("mtime_ns") == st.st_mtime_ns:
            return True
        if sha256_file(path) != record["sha256"]:
            return False
        if mode == "full":
            load_grey(path)
    except (OSError, ImageDecodeError):
        return False
    return True


def verify(images: Path, records: list[dict], mode: str = "fast", workers: int = 4) -> list[dict]:
    """The records whose file is intact (see the module docstring for `fast` and `full`)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ok = list(pool.map(lambda r: _intact(images, r, mode), records))
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
