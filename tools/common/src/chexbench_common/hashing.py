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
    return tree_digest({p.relative_to(folder).as_posix(): sha256_file(p) for p in folder.rglob("*") if p.is_file()})


def tree_digest(file_digests: dict[str, str]) -> str:
    """sha256_tree from already known file digests ({relative posix path: sha256}), e.g. of files just verified."""
    digest = hashlib.sha256()
    for relative in sorted(file_digests, key=lambda r: r.split("/")):  # path order: part by part
        digest.update(f"{relative}\0{file_digests[relative]}\n".encode())
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str:
    """sha256_file for a file, sha256_tree for a folder."""
    path = Path(path)
    return sha256_tree(path) if path.is_dir() else sha256_file(path)
