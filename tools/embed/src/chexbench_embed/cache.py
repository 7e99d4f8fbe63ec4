"""Content-addressed embedding cache: vectors keyed by image-file sha256 under an extractor configuration key.

Layout: <root>/<config key>/config.json (what the key stands for) and pack-<sha256 of its keys>.npz files, each
holding `sha256` (file hashes), `vectors` (float32) and what each file's decoding said about its bit depth
(`container_bits`, `significant_bits` with 0 for none declared, `max_value`: imageio.DepthInfo), plus
<root>/file-hashes.json (HashMemo). The depth travels with the vectors because the bit-depth warning is about the
data: a run the cache answers gives the same warning as one that decodes. A pack without it (written by an earlier
version) counts as a miss. Every pack is written atomically under a name derived from its content, so parallel jobs
never corrupt each other; two jobs caching the same files write the same pack.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
from chexbench_common.atomic import atomic_path, write_json_atomic
from chexbench_common.imageio import DepthInfo

log = logging.getLogger(__name__)


DEPTH_FIELDS = ("container_bits", "significant_bits", "max_value")


class EmbeddingCache:
    """Vectors of one extractor configuration (see ExtractorSpec.cache_key)."""

    def __init__(self, root: str | Path, key: str, description: dict):
        self.dir = Path(root) / key
        self.description = description

    def lookup(self, hashes: list[str], dim: int) -> tuple[np.ndarray, np.ndarray, dict[int, DepthInfo]]:
        """(vectors (N, dim) float32, found mask (N,), {row: depth info} of the found rows) for the file hashes."""
        wanted = {h: i for i, h in enumerate(hashes)}
        positions: dict[str, list[int]] = {}
        for i, h in enumerate(hashes):
            positions.setdefault(h, []).append(i)
        vectors = np.zeros((len(hashes), dim), np.float32)
        found = np.zeros(len(hashes), bool)
        depths: dict[int, DepthInfo] = {}
        for pack in sorted(self.dir.glob("pack-*.npz")) if wanted else []:
            try:
                with np.load(pack, allow_pickle=False) as data:
                    keys = data["sha256"]
                    hit = [j for j, k in enumerate(keys) if k in wanted and not found[wanted[k]]]
                    if not hit or DEPTH_FIELDS[0] not in data.files:  # no depth: an earlier version's pack
                        continue
                    packed = data["vectors"]
                    depth = np.stack([data[name] for name in DEPTH_FIELDS], axis=1)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                log.warning("ignoring unreadable cache pack %s: %s", pack, exc)
                continue
            if packed.shape[1] != dim:
                log.warning("ignoring cache pack %s: dim %d, expected %d", pack, packed.shape[1], dim)
                continue
            for j in hit:
                rows = positions[str(keys[j])]
                vectors[rows] = packed[j]
                found[rows] = True
                container, significant, top = (int(v) for v in depth[j])
                depths.update(dict.fromkeys(rows, DepthInfo(container, significant or None, top)))
        return vectors, found, depths

    def store(self, hashes: list[str], vectors: np.ndarray, depths: list[DepthInfo]) -> Path | None:
        """Write one pack with these (hash, vector, depth info) triples; returns its path (None when there is
        nothing to store)."""
        if not hashes:
            return None
        keys, first = np.unique(np.asarray(hashes), return_index=True)
        digest = hashlib.sha256("\n".join(keys.tolist()).encode()).hexdigest()
        target = self.dir / f"pack-{digest}.npz"
        if not (self.dir / "config.json").exists():
            write_json_atomic(self.dir / "config.json", self.description)
        chosen = [depths[i] for i in first]
        depth = {
            "container_bits": np.array([d.container_bits for d in chosen], np.int64),
            "significant_bits": np.array([d.significant_bits or 0 for d in chosen], np.int64),
            "max_value": np.array([d.max_value for d in chosen], np.int64),
        }
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, sha256=keys, vectors=np.asarray(vectors, np.float32)[first], **depth)
        return target


class HashMemo:
    """Remembers file sha256 by (path, size, mtime_ns, inode), so unchanged real files are not re-read every run.

    Advisory only: a file whose stat differs is hashed again; concurrent writers replace the memo atomically.
    Without a path (no cache) it remembers nothing between runs.
    """

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.entries = self._load()

    def _load(self) -> dict[str, list]:
        if self.path is None:
            return {}
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _stamp(path: Path) -> list:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    def get(self, path: Path) -> str | None:
        entry = self.entries.get(str(path))
        try:
            return entry[3] if entry and entry[:3] == self._stamp(path) else None
        except OSError:
            return None

    def put(self, path: Path, sha256: str) -> None:
        self.entries[str(path)] = [*self._stamp(path), sha256]

    def save(self) -> None:
        """Merge with what other jobs saved meanwhile, then replace the file atomically."""
        if self.path is not None:
            write_json_atomic(self.path, self._load() | self.entries)
