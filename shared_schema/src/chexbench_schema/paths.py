"""The contract's rule for paths held in tables: relative to a declared root, never leaving it."""

from __future__ import annotations

import posixpath
import re


def path_problem(value: str) -> str | None:
    """Why a path from a table may not be used under its root, or None if it is fine."""
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        return f"absolute path {value!r} is not allowed; give it relative to the declared root"
    normalised = posixpath.normpath(value.replace("\\", "/"))
    if normalised == ".." or normalised.startswith("../"):
        return f"path {value!r} escapes its root through '..'"
    return None
