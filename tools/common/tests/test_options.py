"""The shared options: a command's request built from its params (builds_request / request_from) and --device
checked while the command line is parsed."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from chexbench_common.cli import stage_group
from chexbench_common.device import parse_device
from chexbench_common.errors import BadInputError
from chexbench_common.options import (
    KEEP_DEFAULT,
    DeviceType,
    builds_request,
    command_request_problems,
    group,
    request_from,
    shard_options,
    stage_run_options,
)
from chexbench_common.sharding import Shard
from click.testing import CliRunner


@dataclass
class Inner:
    size: int = 1
    mode: str = "a"
    fixed: float = 0.5


@dataclass
class Outer:
    results: Path
    names: list[str]
    pair: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)
    total: int = 0
    shard: Shard = field(default_factory=Shard)


PARAMS = {
    "results": Path("R"),
    "names": ("x", "y"),
    "pair": ("p", "q"),
    "size": 3,
    "mode": "b",
    "n": 2,
    "shard": Shard(),
}


def test_a_request_is_built_from_params_by_name_nested_and_derived():
    request = request_from(Outer, PARAMS, total=lambda n, size: n * size, inner=group(fixed=KEEP_DEFAULT))
    assert request == Outer(Path("R"), ["x", "y"], ("p", "q"), Inner(3, "b", 0.5), 6, Shard())
    assert isinstance(request.names, list) and isinstance(request.pair, tuple)  # as the fields declare them


def test_derivations_run_in_the_order_given():
    seen = []
    request_from(
        Outer,
        PARAMS,
        total=lambda n: seen.append("total") or n,
        names=lambda names: seen.append("names") or list(names),
        inner=group(fixed=KEEP_DEFAULT),
    )
    assert seen == ["total", "names"]


def test_a_rest_derivation_takes_the_params_nothing_else_uses():
    request = request_from(
        Outer, {**PARAMS, "extra": 5}, total=lambda n, **rest: n + sum(rest.values()), inner=group(fixed=KEEP_DEFAULT)
    )
    assert request.total == 7


@pytest.mark.parametrize(
    ("params", "derived", "problem"),
    [
        ({**PARAMS, "stray": 1}, {"total": lambda n: n}, "param 'stray' feeds no field"),
        (PARAMS, {}, "param 'n' feeds no field"),
        ({k: v for k, v in PARAMS.items() if k != "names"}, {"total": lambda n: n}, "names: no param gives it"),
        (PARAMS, {"total": lambda count: count}, "total: derived from 'count', which is no param"),
        (PARAMS, {"total": lambda n: n, "totl": lambda n: n}, "totl: Outer has no such field"),
        (PARAMS, {"total": lambda n: n, "results": KEEP_DEFAULT}, "results: KEEP_DEFAULT but the field has no default"),
    ],
)
def test_an_unmapped_param_or_field_is_a_loud_error(params, derived, problem):
    derived = {"inner": group(fixed=KEEP_DEFAULT), **derived}
    with pytest.raises(TypeError, match=problem):
        request_from(Outer, params, **derived)


def test_a_nested_field_no_option_sets_must_be_declared():
    with pytest.raises(TypeError, match=r"inner.fixed: no param gives it"):
        request_from(Outer, PARAMS, total=lambda n: n)


def test_builds_request_passes_the_request_and_is_checked_before_anything_runs(monkeypatch):
    module = type(sys)("chexbench_fake_stage")
    module.Outer, module.Inner = Outer, Inner
    monkeypatch.setitem(sys.modules, "chexbench_fake_stage", module)
    got = []

    def build(*extra):
        @click.command()
        @stage_run_options(device=False)
        @shard_options
        @click.option("--size", type=int, default=1)
        @click.option("--n", type=int, default=2)
        @click.option("--name", "names", multiple=True)
        @click.option("--pair", multiple=True)
        @click.option("--mode", default="a")
        @builds_request(
            "chexbench_fake_stage:Outer",
            total=lambda n, run_id, model, force: n,
            inner=group(fixed=KEEP_DEFAULT),
        )
        def run(request):
            got.append(request)

        for option in extra:
            run = option(run)
        return click.Group(commands=[run])

    assert command_request_problems(build().commands["run"]) == []
    args = [
        "run",
        "--results",
        "R",
        "--model",
        "m",
        "--name",
        "x",
        "--n",
        "4",
        "--num-shards",
        "2",
        "--shard-index",
        "1",
    ]
    result = CliRunner().invoke(build(), args)
    assert result.exit_code == 0, result.output
    assert got == [Outer(Path("R"), ["x"], (), Inner(1, "a", 0.5), 4, Shard(2, 1))]

    stray = build(click.option("--stray", default=0)).commands["run"]
    assert command_request_problems(stray) == ["param 'stray' feeds no field"]
    result = CliRunner().invoke(click.Group(commands=[stray]), args)
    assert isinstance(result.exception, TypeError) and "'stray' feeds no field" in str(result.exception)


def _device_tool(device_type: DeviceType | None = None):
    tool = stage_group("demo", "1.0", "Demo.")
    ran = []

    @tool.command()
    @stage_run_options(device=device_type or True)
    def run(**params):
        ran.append(params["device"])

    return tool, ran


@pytest.mark.parametrize("text", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_the_vocabulary_parses(text):
    device = parse_device(text)
    assert device.kind == text.split(":")[0]
    assert device.index == (int(text.split(":")[1]) if ":" in text else None)


@pytest.mark.parametrize("text", ["cdua", "gpu", "CUDA", "cuda:", "cuda:x", "cpu:0", "mps", ""])
def test_a_device_outside_the_vocabulary_is_a_usage_error(text):
    with pytest.raises(BadInputError, match="use auto, cpu, cuda or cuda:N"):
        parse_device(text)
    tool, ran = _device_tool()
    result = CliRunner().invoke(tool, ["run", "--model", "m", "--device", text])
    assert result.exit_code == 2, result.output
    assert "use auto, cpu, cuda or cuda:N" in result.output and not ran


def test_a_gpu_the_machine_does_not_show_is_refused_while_parsing(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tool, ran = _device_tool()
    for text in ("cuda", "cuda:0"):
        result = CliRunner().invoke(tool, ["run", "--model", "m", "--device", text])
        assert result.exit_code == 5, result.output
        assert f"--device {text} was asked for but no CUDA GPU is visible" in result.output
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    result = CliRunner().invoke(tool, ["run", "--model", "m", "--device", "cuda:2"])
    assert result.exit_code == 5 and "only 2 CUDA GPU(s) are visible" in result.output
    for text in ("cuda:1", "cuda", "auto", "cpu"):
        assert CliRunner().invoke(tool, ["run", "--model", "m", "--device", text]).exit_code == 0
    assert ran == ["cuda:1", "cuda", "auto", "cpu"]


def test_a_command_may_refuse_a_gpu_index():
    tool, ran = _device_tool(DeviceType(index_refused="the Trainer picks its GPUs"))
    result = CliRunner().invoke(tool, ["run", "--model", "m", "--device", "cuda:3"])
    assert result.exit_code == 3, result.output
    assert "use CUDA_VISIBLE_DEVICES=3 with --device cuda" in result.output and not ran
