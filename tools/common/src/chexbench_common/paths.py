"""Resolve paths taken from tables without letting them leave their declared root."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from .errors import PathEscapeError


def path_problem(value: str) -> str | None:
    """Why a path from a table may not be used under its root, or None if it is fine."""
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        return f"absolute path {value!r} is not allowed; give it relative to the declared root"
    normalised = posixpath.normpath(value.replace("\\", "/"))
    if normalised == ".." or normalised.startswith("../"):
        return f"path {value!r} escapes its root through '..'"
    return None


def resolve_under(root: str | Path, relative: str, *, where: str = "") -> Path:
    """Join `relative` to `root`, refusing absolute paths, '..' escapes and symlinks that lead outside.

    `where` names the source for the message, e.g. "images.parquet row 12".
    """
    prefix = f"{where}: " if where else ""
    why = path_problem(relative)
    if why:
        raise PathEscapeError(f"{prefix}{why} (root {root})")
    root_real = Path(root).resolve()
    target = (root_real / relative).resolve()
    if target != root_real and root_real not in target.parents:
        raise PathEscapeError(f"{prefix}path {relative!r} resolves outside its root {root} (through a symlink?)")
    return target
