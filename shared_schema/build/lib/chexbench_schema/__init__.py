"""chexbench data contract: table schemas, validated read/write, run manifests."""

from .errors import (
    BadInputError,
    ChexbenchError,
    ImageDecodeError,
    MissingResourceError,
    OutOfMemoryError,
    PathEscapeError,
    SchemaError,
)
from .io import Embeddings, read_embeddings, read_metadata, read_table, write_embeddings, write_table
from .labels import CHEXPERT_LABELS
from .tables import TABLES, TableSpec, get_table

__all__ = [
    "BadInputError",
    "CHEXPERT_LABELS",
    "ChexbenchError",
    "Embeddings",
    "ImageDecodeError",
    "MissingResourceError",
    "OutOfMemoryError",
    "PathEscapeError",
    "SchemaError",
    "TABLES",
    "TableSpec",
    "get_table",
    "read_embeddings",
    "read_metadata",
    "read_table",
    "write_embeddings",
    "write_table",
]
