"""The options every stage shares, defined once: results root, model (output folder), run id, device, force,
progress and shards; the file and folder types of every path option; and `builds_request`, which turns a command's
options into its request dataclass, so an option is spelled once, in its decorator. Command-line mistakes (a bad
folder name, a number out of range, a misspelt device) are Click usage errors, exit 2, in every tool.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
import re
import typing
from collections.abc import Callable, Mapping
from pathlib import Path

import click

from . import sharding
from .device import VOCABULARY, check_available, parse_device
from .env import configure_caches
from .errors import BadInputError
from .progress import MODES, library_progress

FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
FILE = click.Path(path_type=Path, dir_okay=False)  # a file (it may not exist yet)
DIR = click.Path(path_type=Path, file_okay=False)  # a folder (it may not exist yet)
PATH = click.Path(path_type=Path)  # a file or a folder


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


class DeviceType(click.ParamType):
    """--device, checked while the command line is parsed, before a stage takes its folder: a value outside the
    vocabulary is a usage error (exit 2); a GPU the machine does not show is a missing resource (exit 5). The value
    stays the text given (manifests record it as such). `index_refused`: why this command takes no `cuda:N` (one
    line, exit 3)."""

    name = "device"

    def __init__(self, index_refused: str | None = None):
        self.index_refused = index_refused

    def convert(self, value, param, ctx):
        try:
            device = parse_device(value)
        except BadInputError as exc:
            self.fail(str(exc), param, ctx)
        if device.index is not None and self.index_refused:
            raise BadInputError(
                f"--device {value}: {self.index_refused}; use CUDA_VISIBLE_DEVICES={device.index} with --device cuda"
            )
        check_available(value)
        return value


def device_option(f=None, *, device_type: DeviceType | None = None):
    """--device (default auto); `@device_option`, or `device_option(device_type=DeviceType(...))` for a command that
    refuses some devices."""
    option = click.option("--device", type=device_type or DeviceType(), default="auto", help=f"{VOCABULARY}.")
    return option if f is None else option(f)


results_option = click.option("--results", type=DIR, default=Path("Results"), help="Results root folder.")
model_option = click.option(
    "--model",
    required=True,
    callback=folder_name,
    help="Model name: the output folder, <results>/<model>/<run-id>/<stage>/.",
)
run_id_option = click.option("--run-id", default="default", callback=folder_name, help="Run id (a folder name).")
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


def stage_run_options(device: bool | DeviceType = True):
    """The options of every `run` command: results, model, run id, force, progress (and device; a DeviceType for a
    command that refuses some devices)."""

    def decorate(f):
        f = progress_option(force_option(f))
        if device:
            f = device_option(f, device_type=device if isinstance(device, DeviceType) else None)
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

    wrapper.chexbench_combines = {"shard": ("shard_mode", "num_shards", "shard_index")}
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


# --- a command's request, built from its options ---------------------------------------------------------------


class KeepDefault:
    """Marks a request field that is no option of the command: it keeps its default."""

    def __repr__(self) -> str:
        return "KEEP_DEFAULT"


KEEP_DEFAULT = KeepDefault()


@dataclasses.dataclass(frozen=True)
class Group:
    derived: dict


def group(**derived) -> Group:
    """A nested dataclass field (e.g. a stage's Options or Settings) built from the command's params the same way,
    with its own derivations. A dataclass field that no param and no derivation gives is built so without them."""
    return Group(derived)


def builds_request(target: str, **derived):
    """The command gets one argument, its request: the dataclass `target` ("module:Class", relative to the command's
    package) built from its params by `request_from` with these derivations. Put it directly above the function, below
    the options (the shared options' wrappers, such as shard_options, sit above it). The module is imported when the
    command runs, after configure_caches() (it may import torch or transformers, which read the cache variables as
    they load), so --help stays light."""

    def decorate(f):
        @functools.wraps(f)
        def wrapper(**params):
            return f(request_from(_import(target, f.__module__), params, **derived))

        wrapper.chexbench_request = (target, f.__module__, derived)
        return wrapper

    return decorate


def request_from(cls: type, params: Mapping[str, object], **derived):
    """Build the dataclass `cls` from a command's Click params. Each field takes, in this order:
    - a derivation given here: a callable whose parameter names are the params it is computed from (a `**rest`
      parameter takes every param nothing else uses), `group(...)` for a nested dataclass, or KEEP_DEFAULT;
    - the param of its name (a tuple from a `multiple` option becomes a list where the field is a list);
    - for a dataclass-typed field, that dataclass built from the same params.
    Derivations run in the order given, before the other fields. A param that feeds no field, or a field that nothing
    gives, is a bug in the command: TypeError naming every one."""
    problems = request_problems(cls, set(params), derived)
    if problems:
        raise TypeError(f"{cls.__name__} from the options: " + "; ".join(problems))
    return _build(cls, params, derived, _leftover(cls, set(params), derived))


def command_request_problems(command: click.Command) -> list[str]:
    """What `builds_request` would refuse when the command runs (an empty list: every param feeds its request and
    every field is given); for tests, so a new option without a field fails before anyone runs the command."""
    spec = getattr(command.callback, "chexbench_request", None)
    if spec is None:
        return [f"{command.name}: not built with builds_request"]
    target, module, derived = spec
    names = {p.name for p in command.params if p.expose_value}
    fn = command.callback
    while fn is not None:  # the wrappers above builds_request combine some params into one (shard_options)
        for combined, parts in getattr(fn, "chexbench_combines", {}).items():
            if set(parts) <= names:
                names = (names - set(parts)) | {combined}
        fn = getattr(fn, "__wrapped__", None)
    return request_problems(_import(target, module), names, derived)


def request_problems(cls: type, names: set[str], derived: Mapping[str, object]) -> list[str]:
    """Every param name that feeds no field of `cls`, and every field that nothing gives (see request_from)."""
    used, problems = _plan(cls, names, derived, "")
    rest = [d for d in _derivations(cls, derived) if _rest_parameter(d)]
    if len(rest) > 1:
        problems.append("more than one derivation takes **rest")
    if not rest:
        problems += [f"param {name!r} feeds no field" for name in sorted(names - used)]
    return problems


def _import(target: str, module: str) -> type:
    configure_caches()
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name, package=module.rpartition(".")[0]), name)


def _fields(cls: type) -> list[tuple[dataclasses.Field, object]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def _nested(hint) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _rest_parameter(fn) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def _named(fn) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]


def _derivations(cls: type, derived: Mapping[str, object]) -> list[Callable]:
    """Every derivation callable of cls and its nested groups."""
    out = []
    for f, hint in _fields(cls):
        how = derived.get(f.name)
        if isinstance(how, Group) or (how is None and _nested(hint)):
            out += _derivations(hint, how.derived if isinstance(how, Group) else {})
        elif callable(how):
            out.append(how)
    return out


def _plan(cls: type, names: set[str], derived: Mapping[str, object], where: str) -> tuple[set[str], list[str]]:
    """(params used, problems) of building cls from params named `names`."""
    fields = dict((f.name, (f, hint)) for f, hint in _fields(cls))
    used: set[str] = set()
    problems = [f"{where}{name}: {cls.__name__} has no such field" for name in derived if name not in fields]
    for name, (f, hint) in fields.items():
        how = derived.get(name)
        if how is KEEP_DEFAULT:
            if not _has_default(f):
                problems.append(f"{where}{name}: KEEP_DEFAULT but the field has no default")
        elif isinstance(how, Group) or (how is None and name not in names and _nested(hint)):
            if not _nested(hint):
                problems.append(f"{where}{name}: group() for a field that is not a dataclass")
                continue
            inner_used, inner = _plan(hint, names, how.derived if isinstance(how, Group) else {}, f"{where}{name}.")
            used |= inner_used
            problems += inner
        elif callable(how):
            unknown = [arg for arg in _named(how) if arg not in names]
            problems += [f"{where}{name}: derived from {arg!r}, which is no param" for arg in unknown]
            used |= set(_named(how))
        elif how is not None:
            problems.append(f"{where}{name}: a derivation is a callable, group(...) or KEEP_DEFAULT")
        elif name in names:
            used.add(name)
        else:
            problems.append(f"{where}{name}: no param gives it (add the option, derive it, or KEEP_DEFAULT)")
    return used, problems


def _leftover(cls: type, names: set[str], derived: Mapping[str, object]) -> set[str]:
    """The params that only a **rest derivation takes."""
    return names - _plan(cls, names, derived, "")[0]


def _build(cls: type, params: Mapping[str, object], derived: Mapping[str, object], leftover: set[str]):
    values = {}
    for name, how in derived.items():  # in the order given: the first to refuse its input speaks first
        if callable(how):
            values[name] = how(
                **{arg: params[arg] for arg in _named(how)},
                **({k: v for k, v in params.items() if k in leftover} if _rest_parameter(how) else {}),
            )
    for f, hint in _fields(cls):
        how = derived.get(f.name)
        if f.name in values or how is KEEP_DEFAULT:
            continue
        if isinstance(how, Group) or (how is None and f.name not in params and _nested(hint)):
            values[f.name] = _build(hint, params, how.derived if isinstance(how, Group) else {}, leftover)
        else:
            value = params[f.name]
            values[f.name] = list(value) if typing.get_origin(hint) is list and isinstance(value, tuple) else value
    return cls(**values)
