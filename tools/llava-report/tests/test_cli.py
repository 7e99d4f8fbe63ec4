"""The command line around the stage's own commands: a variant no installed package provides is one line, not a
traceback."""

import os
import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).parent / "chexbench-llava-report"


def _run(*args, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "CHEXBENCH_PROGRESS": "none", **env}
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, env=environment, timeout=300)


def test_a_variant_no_package_provides_is_one_line():
    result = _run("finetune", "--results", "Results", "--model", "m", CHEXBENCH_VARIANT="nonesuch")
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        "chexbench-llava-report: error: CHEXBENCH_VARIANT=nonesuch: no installed package provides this variant's "
        "`finetune` (legacy: install tools/llava-report/legacy, as the llava-report-legacy image does); unset it for "
        "the native commands"
    ]
    assert "run" not in _run("--help", CHEXBENCH_VARIANT="nonesuch").stdout.split()
