"""chexbench data contract: versioned table schemas, validation and validated table IO.

The table IO (pandas, pyarrow) loads on first use, so CLIs that only need the specs start fast.
"""

from importlib import import_module

from .labels import CHEXPERT_LABELS
from .original import ORIGINAL_LEADERBOARD_COLUMNS
from .tables import TABLES, TableSpec, get_table

_LAZY = {
    name: "io"
    for name in ("Embeddings", "read_embeddings", "read_metadata", "read_table", "write_embeddings", "write_table")
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHEXPERT_LABELS",
    "Embeddings",
    "ORIGINAL_LEADERBOARD_COLUMNS",
    "TABLES",
    "TableSpec",
    "get_table",
    "read_embeddings",
    "read_metadata",
    "read_table",
    "write_embeddings",
    "write_table",
]
