"""Every stage's commands against the shared options: each command's request is built from its options with no
param left over and no field left unset (builds_request), and --device is checked while the command line is parsed,
so a bad device never touches a finished result."""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from chexbench_common.lifecycle import Lifecycle
from chexbench_common.options import command_request_problems
from chexbench_common.rundir import StageRun, is_finished
from click.testing import CliRunner
from stages import load_stages

ROOT = Path(__file__).resolve().parents[1]
DECLARED = load_stages(ROOT)
# commands that hand their params to a library function instead of building a request: (tool, command) -> function
CALLS = {
    ("report", "run"): "chexbench_report.run:run",
}


def _main(name: str):
    return importlib.import_module(f"chexbench_{name.replace('-', '_')}.cli").main


def _commands():
    """(id, command) of every command of every declared stage and tool, and of the installed image variants."""
    for decl in DECLARED:
        for name, command in sorted(_main(decl.name).commands.items()):
            yield f"{decl.name} {name}", command
    for variant in entry_points(group="chexbench_llava_report.variants"):
        for command in variant.load():
            yield f"llava-report[{variant.name}] {command.name}", command


COMMANDS = dict(_commands())
BUILT = {key: c for key, c in COMMANDS.items() if hasattr(c.callback, "chexbench_request")}


@pytest.mark.parametrize("key", sorted(BUILT))
def test_a_command_builds_its_request_from_every_param(key):
    assert command_request_problems(BUILT[key]) == []


@pytest.mark.parametrize("stage", [d for d in DECLARED if not d.is_tool], ids=lambda d: d.name)
def test_every_stage_run_builds_its_request_from_its_options(stage):
    run = _main(stage.name).commands["run"]
    if (stage.name, "run") in CALLS:  # its params are the library function's keyword arguments, all of them
        module, _, name = CALLS[stage.name, "run"].partition(":")
        signature = inspect.signature(getattr(importlib.import_module(module), name))
        names = {p.name for p in run.params if p.expose_value}
        assert names == set(signature.parameters)
        return
    assert f"{stage.name} run" in BUILT, "use chexbench_common.options.builds_request"
    assert command_request_problems(run) == []


# --- --device: checked before the lifecycle touches the folder -------------------------------------------------

WHERE = ["--results", "R", "--model", "m", "--run-id", "r"]
# stage folder -> a command line that takes --device; its inputs are not there: a command that went past parsing
# would void the finished result (a refused re-run does) and exit 3, 4 or 5 naming an input instead
DEVICE_COMMANDS = {
    "align": ["chexbench-align", "run", *WHERE, "--prompts", "p.parquet", "--image-weights", "w.pt"]
    + ["--text-model", "text"],
    "classify": ["chexbench-classify", "run", *WHERE, "--train-prompts", "a.parquet", "--test-prompts", "b.parquet"]
    + ["--real-root", "real", "--cache-dir", "cache"],
    "embed": ["chexbench-embed", "run", *WHERE, "--prompts", "p.parquet", "--real-root", "real", "--extractor"]
    + ["radiomics"],
    "generate": ["chexbench-generate", "run", *WHERE, "--generator", "sana", "--model-path", "pipe"]
    + ["--prompts", "p.parquet"],
    "privacy": ["chexbench-privacy", "run", *WHERE, "--train-prompts", "a.parquet", "--holdout-prompts", "b.parquet"]
    + ["--real-root", "real", "--reid-weights", "reid.pth"],
    "llava-report/finetune-p100": ["chexbench-llava-report", "finetune", *WHERE, "--model-dir", "llava"]
    + ["--train-prompts", "a.parquet"],
    "llava-report/generate-zero-shot": ["chexbench-llava-report", "generate", *WHERE, "--model-dir", "llava"]
    + ["--test-prompts", "b.parquet", "--real-root", "real"],
    "llava-report": ["chexbench-llava-report", "score", *WHERE, "--predictions", "p100=p.parquet"],
}


def test_every_stage_that_takes_a_device_is_covered():
    gpu = {d.name for d in DECLARED if not d.is_tool and d.uses_gpu}
    assert gpu == {folder.split("/")[0] for folder in DEVICE_COMMANDS}


def _finished(results: Path, folder: str) -> Path:
    """A finished result made by the lifecycle: manifest `success`, its output, _SUCCESS."""
    stage = StageRun(results, "m", "r", folder, tool_version="0")
    with Lifecycle(stage) as life:
        life.start({"a": 1}, {})
        (stage.dir / "metrics.parquet").write_text("the previous result\n")
        life.finish({"metrics": stage.dir / "metrics.parquet"})
    assert is_finished(stage.dir)
    return stage.dir


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("folder", list(DEVICE_COMMANDS))
@pytest.mark.parametrize(("device", "code"), [("cdua", 2), ("cuda", 5)])
def test_a_bad_device_is_refused_before_the_finished_result_is_touched(tmp_path, monkeypatch, folder, device, code):
    """cdua: not a device (exit 2, a usage error); cuda on a machine that shows no GPU: a missing resource (exit 5).
    The finished result is left as it was, byte for byte, and no lock is left behind. (Every spelling and the GPU
    index checks: tools/common/tests/test_options.py.)"""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    stage_dir = _finished(tmp_path / "R", folder)
    before = _snapshot(stage_dir)
    command, *args = DEVICE_COMMANDS[folder]
    result = CliRunner().invoke(_main(command.removeprefix("chexbench-")), [*args, "--device", device])
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert ("Invalid value for '--device'" if code == 2 else f"--device {device} was asked for") in result.output
    assert _snapshot(stage_dir) == before
    assert is_finished(stage_dir)


@pytest.mark.parametrize("command", ["finetune", "run"])
def test_a_gpu_index_the_trainer_would_ignore_is_refused_before_the_finished_result_is_touched(
    tmp_path, monkeypatch, command
):
    """llava-report's finetune and run train with the Trainer, which takes every visible GPU: `cuda:1` is refused
    while parsing (exit 3, one line saying what to use instead), also on a machine that shows that GPU."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.chdir(tmp_path)
    stage_dir = _finished(tmp_path / "R", "llava-report/finetune-p100")
    before = _snapshot(stage_dir)
    args = DEVICE_COMMANDS["llava-report/finetune-p100"][2:]
    if command == "run":
        args += ["--test-prompts", "b.parquet", "--real-root", "real"]
    result = CliRunner().invoke(_main("llava-report"), [command, *args, "--device", "cuda:1"])
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "use CUDA_VISIBLE_DEVICES=1 with --device cuda" in lines[0], result.output
    assert _snapshot(stage_dir) == before
    assert is_finished(stage_dir)
