"""The errors a reader or writer of a contract table raises, with the exit code every chexbench command gives them.

They are the base of the runtime's whole error family (`chexbench_common.errors` builds on them and re-exports them),
so a caller that catches `ChexbenchError` catches the contract's errors too, and the contract needs nothing else.
"""

from __future__ import annotations

# The exit codes of the contract's own errors; chexbench_common.errors lists every code (it re-exports these).
EXIT_BAD_INPUT = 3
EXIT_CONTRACT = 4

MAX_REPORTED_PROBLEMS = 50


class ChexbenchError(Exception):
    """An expected failure: bad input, a missing resource, ... Printed without a traceback."""

    exit_code = EXIT_BAD_INPUT

    def lines(self) -> list[str]:
        """The message lines shown to the user (one per problem: join several problems with newlines)."""
        return str(self).splitlines() or [type(self).__name__]


class BadInputError(ChexbenchError):
    """An input file or value the user has to fix (unreadable image, malformed CSV row, ...)."""


class Problems:
    """Every problem found in one source, one message line each (at most MAX_REPORTED_PROBLEMS, then a count).
    Without a source, each problem is a whole line that names its own file and row. Mixed into an error class."""

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


class SchemaError(Problems, ChexbenchError):
    """A table that does not satisfy its contract; carries every problem found, not just the first."""

    exit_code = EXIT_CONTRACT
