"""The one error family every chexbench CLI turns into a short message and a distinct exit code."""

from __future__ import annotations

# Exit codes shared by every chexbench command, one per class of error (0 ok, 1 bug). 2 is a command-line mistake
# (an unknown option, a bad number or folder name): Click's usage error, the same in every tool.
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_CONTRACT = 4
EXIT_MISSING_RESOURCE = 5
EXIT_OUT_OF_MEMORY = 6
EXIT_BUSY = 7
EXIT_INTERRUPTED = 130

MAX_REPORTED_PROBLEMS = 50


class ChexbenchError(Exception):
    """An expected failure: bad input, a missing resource, ... Printed without a traceback."""

    exit_code = EXIT_BAD_INPUT

    def lines(self) -> list[str]:
        """The message lines shown to the user (one per problem: join several problems with newlines)."""
        return str(self).splitlines() or [type(self).__name__]


class BadInputError(ChexbenchError):
    """An input file or value the user has to fix (unreadable image, malformed CSV row, ...)."""


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


class _Problems:
    """Every problem found in one source, one message line each (at most MAX_REPORTED_PROBLEMS, then a count).
    Without a source, each problem is a whole line that names its own file and row."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        super().__init__(self._line(f"{len(self.problems)} problem(s): {self.problems[0] if self.problems else ''}"))

    def _line(self, text: str) -> str:
        return f"{self.source}: {text}" if self.source else text

    def lines(self) -> list[str]:
        shown = [self._line(p) for p in self.problems[:MAX_REPORTED_PROBLEMS]]
        if len(self.problems) > MAX_REPORTED_PROBLEMS:
            shown.append(self._line(f"... and {len(self.problems) - MAX_REPORTED_PROBLEMS} more problem(s)"))
        return shown


class SchemaError(_Problems, ChexbenchError):
    """A table that does not satisfy its contract; carries every problem found, not just the first."""

    exit_code = EXIT_CONTRACT


class BadRowsError(_Problems, BadInputError):
    """Several rows or files of one input that the user has to fix (bad input, exit 3), all listed."""


class ImageDecodeErrors(_Problems, ImageDecodeError):
    """Every image of one input that cannot be decoded, one line each naming its row and file (all listed)."""

    def __init__(self, problems: list[str]):
        super().__init__("", problems)
