"""The options every stage shares, defined once: results root, model (output folder), run id, device, force,
progress and shards. Command-line mistakes (a bad folder name, a number out of range) are Click usage errors, exit 2,
in every tool.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import click

from . import sharding
from .errors import BadInputError
from .progress import MODES, library_progress

FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def folder_name(ctx, param, value):
    """Model names and run ids become folder names under the results root: no separators, no '..'."""
    if value is not None and not FOLDER_NAME.fullmatch(value):
        raise click.BadParameter(f"{value!r}: use letters, digits and . _ + - (it becomes a folder name)")
    return value


def _set_progress(ctx, param, value):
    if value is not None:
        os.environ["CHEXBENCH_PROGRESS"] = value
        library_progress(value)
    return value


results_option = click.option(
    "--results", type=click.Path(path_type=Path, file_okay=False), default=Path("Results"), help="Results root folder."
)
model_option = click.option(
    "--model",
    required=True,
    callback=folder_name,
    help="Model name: the output folder, <results>/<model>/<run-id>/<stage>/.",
)
run_id_option = click.option("--run-id", default="default", callback=folder_name, help="Run id (a folder name).")
device_option = click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
force_option = click.option("--force", is_flag=True, help="Redo the work even if a finished run has the same inputs.")
progress_option = click.option(
    "--progress",
    type=click.Choice(MODES),
    default=None,
    expose_value=False,
    callback=_set_progress,
    help="Progress display [default: $CHEXBENCH_PROGRESS, else a bar on a terminal, log lines otherwise].",
)


def run_folder_options(f):
    """--results, --model, --run-id: where a stage writes."""
    return results_option(model_option(run_id_option(f)))


def stage_run_options(device: bool = True):
    """The options of every `run` command: results, model, run id, force, progress (and device)."""

    def decorate(f):
        f = progress_option(force_option(f))
        if device:
            f = device_option(f)
        return run_folder_options(f)

    return decorate


def shard_options(f):
    """--shard auto | --num-shards N --shard-index K, passed to the command as one `shard` (sharding.Shard)."""

    @click.option(
        "--shard",
        "shard_mode",
        type=click.Choice(["auto"]),
        help="auto: this task's shard from the Slurm job array (TASK_COUNT, TASK_ID, TASK_MIN, TASK_STEP).",
    )
    @click.option("--num-shards", type=click.IntRange(min=1), help="Number of shards (with --shard-index).")
    @click.option("--shard-index", type=click.IntRange(min=0), help="This shard, 0-based (with --num-shards).")
    @functools.wraps(f)
    def wrapper(*args, shard_mode, num_shards, shard_index, **kwargs):
        try:
            shard = sharding.resolve(shard_mode, num_shards, shard_index)
        except BadInputError as exc:  # a command-line mistake: usage error, exit 2
            raise click.UsageError(str(exc)) from None
        return f(*args, shard=shard, **kwargs)

    return wrapper


def merge_options(f):
    """The options of every `merge` command."""
    f = click.option(
        "--num-shards", type=click.IntRange(min=1), help="Which sharded run to merge when there are several."
    )(f)
    return run_folder_options(progress_option(force_option(f)))


def echo_outputs(stage, did_work: bool) -> None:
    """Print a finished stage's output paths (stdout) and, when it skipped, why (stderr)."""
    for rel in stage.read_manifest().get("outputs", {}).values():
        click.echo(stage.dir / rel)
    if not did_work:
        click.echo(f"up to date: {stage.dir} (use --force to redo it)", err=True)
