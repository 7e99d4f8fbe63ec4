"""The first release's spellings of the conversion commands, now `chexbench-llava-convert <command>`: each prints a
deprecation line and hands its arguments to that tool (a separate console script, so this stage never imports it),
exiting with its exit code; they go in the next release."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
from chexbench_common.errors import MissingResourceError

TOOL = "chexbench-llava-convert"
MOVED = ("convert", "check-conversion", "tiny-llava-rad")


def _tool() -> str:
    """The tool's console script: next to this Python first (a venv not on PATH), then on PATH."""
    found = shutil.which(TOOL, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found is None:
        raise MissingResourceError(
            f"{TOOL} is not installed here: install tools/llava-convert (`make setup` does) or run it from its image "
            "(compose service llava-convert)"
        )
    return found


def _moved(name: str) -> click.Command:
    @click.command(
        name,
        hidden=True,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        help=f"Moved: `{TOOL} {name}`.",
    )
    @click.pass_context
    def forward(ctx: click.Context) -> None:
        click.echo(
            f"chexbench-llava-report: deprecated: `chexbench-llava-report {name}` is now `{TOOL} {name}`; "
            "the old spelling goes in the next release",
            err=True,
        )
        ctx.exit(subprocess.run([_tool(), name, *ctx.args], check=False).returncode)

    return forward


COMMANDS = [_moved(name) for name in MOVED]
