"""On-disk cache of real-set statistics (mean, covariance, √covariance), content-addressed and written atomically.

The key is the sha256 of the real embeddings file, the extractor and the exact rows used (a pathology group or an
equal-N subsample), so a changed file or selection can never return stale statistics; parallel jobs writing the same
key each rename a complete file into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from chexbench_common.atomic import atomic_path

from .frechet import Gaussian

log = logging.getLogger(__name__)
FORMAT = 1


def stats_key(file_sha256: str, extractor: str, rows: np.ndarray) -> str:
    """Content address of the statistics of `rows` of one real embeddings file."""
    rows_sha = hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()
    record = {"format": FORMAT, "file_sha256": file_sha256, "extractor": extractor, "rows_sha256": rows_sha}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


class StatsCache:
    """Real statistics by key under `folder` (None: no caching, everything is computed)."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str, compute: Callable[[], tuple[Gaussian, np.ndarray]]) -> tuple[Gaussian, np.ndarray]:
        """(Gaussian, √cov) for `key`, from the cache when present, else computed and stored."""
        if self.folder is not None:
            path = self._path(key)
            if path.exists():
                try:
                    with np.load(path) as z:
                        loaded = Gaussian(int(z["n"]), z["mean"], z["cov"]), z["sqrt_cov"]
                    self.hits += 1
                    return loaded
                except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                    log.warning("ignoring unreadable cache file %s: %s", path, exc)
        self.misses += 1
        gaussian, sqrt_cov = compute()
        if self.folder is not None:
            with atomic_path(self._path(key)) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, n=gaussian.n, mean=gaussian.mean, cov=gaussian.cov, sqrt_cov=sqrt_cov)
        return gaussian, sqrt_cov
