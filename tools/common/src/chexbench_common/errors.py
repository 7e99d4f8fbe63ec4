"""The one error family every chexbench CLI turns into a short message and a distinct exit code.

Its base (`ChexbenchError`, `BadInputError`, `SchemaError` and their exit codes 3 and 4) is the data contract's own
(`chexbench_schema.errors`), re-exported here, so a contract error leaves every command with the same code.
"""

from __future__ import annotations

from chexbench_schema.errors import (
    EXIT_BAD_INPUT,
    EXIT_CONTRACT,
    MAX_REPORTED_PROBLEMS,
    BadInputError,
    ChexbenchError,
    Problems,
    SchemaError,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUSY",
    "EXIT_CONTRACT",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING_RESOURCE",
    "EXIT_OUT_OF_MEMORY",
    "EXIT_USAGE",
    "MAX_REPORTED_PROBLEMS",
    "BadInputError",
    "BadRowsError",
    "ChexbenchError",
    "ImageDecodeError",
    "ImageDecodeErrors",
    "IncompleteShardsError",
    "MissingResourceError",
    "OutOfMemoryError",
    "PathEscapeError",
    "SchemaError",
    "StageBusyError",
]

# Exit codes shared by every chexbench command, one per class of error (0 ok, 1 bug). 2 is a command-line mistake
# (an unknown option, a bad number or folder name): Click's usage error, the same in every tool. 3 (bad input) and
# 4 (a table that breaks its contract) come with the contract's errors.
EXIT_USAGE = 2
EXIT_MISSING_RESOURCE = 5
EXIT_OUT_OF_MEMORY = 6
EXIT_BUSY = 7
EXIT_INTERRUPTED = 130


class PathEscapeError(BadInputError):
    """A path from a table that is absolute or leaves its declared root."""


class ImageDecodeError(BadInputError):
    """An image file that cannot be read or decoded."""


class MissingResourceError(ChexbenchError):
    """Weights, a model folder, a GPU or another resource that is not where it was expected."""

    exit_code = EXIT_MISSING_RESOURCE


class OutOfMemoryError(ChexbenchError):
    """The accelerator or host ran out of memory."""

    exit_code = EXIT_OUT_OF_MEMORY


class StageBusyError(ChexbenchError):
    """Another process holds the lock of the stage folder this command would write."""

    exit_code = EXIT_BUSY


class IncompleteShardsError(MissingResourceError):
    """A merge was asked for while some shards of the run have not finished."""


class BadRowsError(Problems, BadInputError):
    """Several rows or files of one input that the user has to fix (bad input, exit 3), all listed."""


class ImageDecodeErrors(Problems, ImageDecodeError):
    """Every image of one input that cannot be decoded, one line each naming its row and file (all listed)."""

    def __init__(self, problems: list[str]):
        super().__init__("", problems)
