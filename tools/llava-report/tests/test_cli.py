"""The command line around the stage's own commands: the conversion commands' first-release spellings (moved to
chexbench-llava-convert) still work with a deprecation line, and a variant no installed package provides is one
line, not a traceback."""

import os
import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).parent / "chexbench-llava-report"


def _run(*args, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "CHEXBENCH_PROGRESS": "none", **env}
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, env=environment, timeout=300)


def test_the_moved_conversion_commands_hand_over_to_the_tool_with_a_deprecation_line(tmp_path):
    made = _run("tiny-llava-rad", tmp_path / "tiny")
    assert made.returncode == 0, made.stderr
    assert (
        "chexbench-llava-report: deprecated: `chexbench-llava-report tiny-llava-rad` is now "
        "`chexbench-llava-convert tiny-llava-rad`" in made.stderr
    )
    assert made.stdout.split() == [str(tmp_path / "tiny" / "llava-rad"), str(tmp_path / "tiny" / "vicuna")]
    assert (tmp_path / "tiny" / "llava-rad" / "adapter_model.bin").is_file()

    out = tmp_path / "out"
    refused = _run("convert", "--llava-rad", tmp_path / "none", "--vicuna", tmp_path / "tiny" / "vicuna", "--out", out)
    assert refused.returncode == 5  # the tool's own exit code and error line come through
    errors = [line for line in refused.stderr.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith("chexbench-llava-convert: error: ") and "none" in errors[0]
    assert "Traceback" not in refused.stderr and not out.exists()

    listed = [line.split()[0] for line in _run("--help").stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == ["finetune", "generate", "run", "score", "tiny-chexbert"]  # the moved ones are hidden


def test_a_variant_no_package_provides_is_one_line():
    result = _run("finetune", "--results", "Results", "--model", "m", CHEXBENCH_VARIANT="nonesuch")
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        "chexbench-llava-report: error: CHEXBENCH_VARIANT=nonesuch: no installed package provides this variant's "
        "`finetune` (legacy: install tools/llava-report/legacy, as the llava-report-legacy image does); unset it for "
        "the native commands"
    ]
    assert "run" not in _run("--help", CHEXBENCH_VARIANT="nonesuch").stdout.split()
