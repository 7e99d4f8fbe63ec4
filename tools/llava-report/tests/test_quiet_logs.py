"""What a newcomer reads in a batch log: no library progress bars ("Loading weights", "Writing model shards") outside
bar mode, and no deprecation warning about our own calls (training arguments under their current names)."""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the tests' world builders
from test_train import finetune_args, make_world  # noqa: E402

CLI = Path(sys.executable).parent / "chexbench-llava-report"
CONVERT = Path(sys.executable).parent / "chexbench-llava-convert"  # the tool that writes the demo's LLaVA-Rad
NOISE = ("Loading weights", "Writing model shards", "it/s]", "FutureWarning", "DeprecationWarning", "[transformers]")


def _run(args: list[str], mode: str = "log", cli: Path = CLI) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHEXBENCH_PROGRESS": mode, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "default"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    return subprocess.run([str(cli), *map(str, args)], env=env, capture_output=True, text=True, timeout=600)


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(word in line for word in NOISE)]


def test_building_the_demo_model_prints_no_library_bars_or_warnings(tmp_path):
    result = _run(["tiny-llava-rad", tmp_path / "tiny"], cli=CONVERT)
    assert result.returncode == 0, result.stderr
    assert not _noise(result.stderr), result.stderr
    assert "" not in result.stdout.splitlines(), result.stdout  # the tokenizer trainer's blank lines


def test_fine_tuning_logs_only_its_own_lines(tiny_llava, tmp_path):
    """Gradient checkpointing on (the default): the training arguments use transformers' current names."""
    world = make_world(tmp_path)
    args = finetune_args(world, tiny_llava, "--epochs", "1", "--batch-size", "2")
    result = _run([a for a in args if a not in ("--progress", "none")], mode="log")
    assert result.returncode == 0, result.stderr
    assert not _noise(result.stderr), result.stderr
    assert "llava-report finetune:" in result.stderr  # our own progress lines are still there
