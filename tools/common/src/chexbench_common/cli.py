"""Click plumbing shared by every chexbench command: expected errors become short messages and distinct exit codes,
logs go to stderr, and the libraries' progress bars follow CHEXBENCH_PROGRESS."""

from __future__ import annotations

import logging
import sys

import click

from .env import quiet_library_warnings
from .errors import EXIT_INTERRUPTED, ChexbenchError
from .progress import library_progress

__all__ = ["StageGroup", "configure_logging", "stage_group"]


class StageGroup(click.Group):
    """A Click group that prints ChexbenchError as `<prog>: error: <line>` lines and exits with its code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ChexbenchError as exc:
            for line in exc.lines():
                click.echo(f"{ctx.find_root().info_name}: error: {line}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(f"{ctx.find_root().info_name}: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def stage_group(name: str, version: str, help_text: str) -> StageGroup:
    """Create the top-level group of `chexbench-<name>` with --version and -v/--verbose."""

    @click.group(
        name=f"chexbench-{name}",
        cls=StageGroup,
        help=help_text,
        context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
    )
    @click.version_option(version, prog_name=f"chexbench-{name}")
    @click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
    def group(verbose: int) -> None:
        configure_logging(verbose)
        library_progress()  # the libraries' bars follow CHEXBENCH_PROGRESS (a --progress option applies it again)
        quiet_library_warnings()

    return group


def configure_logging(verbose: int = 0) -> None:
    """Log to stderr (stdout stays free for machine-readable output): our INFO lines by default, the libraries'
    only from WARNING up (faiss's loader, for one, logs every build it tries at INFO) unless -vv."""
    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
    if verbose < 2:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_ours_or_warning)


def _ours_or_warning(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name.startswith("chexbench")
