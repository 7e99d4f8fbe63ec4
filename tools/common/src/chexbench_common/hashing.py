"""sha256 of files and of model folders (used in manifests, caches and registries)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(folder: str | Path) -> str:
    """sha256 over the sorted (relative path, file sha256) list of a folder: a model folder's identity."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str:
    """sha256_file for a file, sha256_tree for a folder."""
    path = Path(path)
    return sha256_tree(path) if path.is_dir() else sha256_file(path)
