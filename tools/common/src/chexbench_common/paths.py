"""Resolve paths taken from tables without letting them leave their declared root."""

from __future__ import annotations

from pathlib import Path

from chexbench_schema.paths import path_problem

from .errors import PathEscapeError

__all__ = ["path_problem", "resolve_under"]


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
