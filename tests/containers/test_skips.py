"""A test that cannot run must not pass: `make slurm-test` and `make container-test` exit 77 with a loud SKIPPED line
when their engine is missing, and .ci/run fails on a skip unless CHEXBENCH_ALLOW_SKIP=1.

Fast and engine-free: the scripts run with a PATH that has no podman (no Slurm), and .ci/run runs against a stand-in
`make` that records its targets.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bin_dir(tmp_path: Path, keep: tuple[str, ...]) -> Path:
    """A folder with links to only the given host commands."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in keep:
        for folder in ("/usr/bin", "/bin"):
            if Path(folder, name).exists():
                (bindir / name).symlink_to(Path(folder, name))
                break
    return bindir


BASIC = ("bash", "date", "dirname", "cat", "printf", "mktemp", "id", "tail", "seq", "sleep", "rm", "mkdir")


def _run_script(script: str, bindir: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """Run a real-system test script with only `bindir` on PATH; (result, the file its skip reason goes to)."""
    skip_file = tmp_path / "skip"
    result = subprocess.run(
        ["bash", str(ROOT / script)],
        env={"PATH": str(bindir), "HOME": str(tmp_path), "CHEXBENCH_SKIP_FILE": str(skip_file)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, skip_file


def test_container_test_without_podman_skips_loudly_with_77(tmp_path):
    result, skip_file = _run_script("tests/containers/run_podman.sh", _bin_dir(tmp_path, BASIC), tmp_path)
    assert result.returncode == 77, result.stderr
    # neither podman nor apt-get to install it (as root) or not root: a loud skip, never a silent pass
    assert "CONTAINER TEST SKIPPED: podman/runc/mmdebstrap are not installed" in result.stderr
    assert skip_file.read_text().startswith("CONTAINER TEST SKIPPED: podman/runc/mmdebstrap are not installed")


def test_slurm_test_without_slurm_as_non_root_skips_loudly_with_77(tmp_path):
    if os.getuid() != 0:
        pytest.skip("the stand-in id below assumes root is the caller; as non-root the real id already says so")
    bindir = _bin_dir(tmp_path, BASIC)
    fake_id = bindir / "id"
    fake_id.unlink()
    fake_id.write_text("#!/bin/bash\n[[ $1 == -u ]] && echo 1000 || echo user\n")
    fake_id.chmod(fake_id.stat().st_mode | stat.S_IEXEC)
    result, skip_file = _run_script("tests/slurm/run_local_slurm.sh", bindir, tmp_path)
    assert result.returncode == 77, result.stdout + result.stderr
    assert "SLURM TEST SKIPPED: Slurm is not installed" in result.stderr
    assert skip_file.read_text().startswith("SLURM TEST SKIPPED")


FAKE_MAKE = """#!/bin/bash
for arg in "$@"; do [[ $arg == *=* ]] || echo "$arg"; done >> "$FAKE_MAKE_LOG"
echo "$@${CONTAINER_TEST_BUILD_ONLY:+ CONTAINER_TEST_BUILD_ONLY=$CONTAINER_TEST_BUILD_ONLY}\
${CONTAINER_TEST_STAGES:+ CONTAINER_TEST_STAGES=$CONTAINER_TEST_STAGES}" >> "$FAKE_MAKE_LOG.calls"
case " ${FAKE_SKIP:-} " in
  *" $1 "*) echo "SKIPPED: no engine" > "$CHEXBENCH_SKIP_FILE"; exit 2 ;;
esac
case " ${FAKE_FAIL:-} " in *" $1 "*) exit 2 ;; esac
exit 0
"""


def run_ci(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """.ci/run against the stand-in make: (result, the make targets it asked for, in order)."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    make = bindir / "make"
    make.write_text(FAKE_MAKE)
    make.chmod(make.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "make.log"
    log.unlink(missing_ok=True)
    Path(f"{log}.calls").unlink(missing_ok=True)
    full = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_MAKE_LOG": str(log)} | env
    result = subprocess.run(["bash", str(ROOT / ".ci/run")], env=full, capture_output=True, text=True, timeout=60)
    return result, log.read_text().split() if log.exists() else []


def make_calls(tmp_path: Path) -> list[str]:
    """The last .ci/run's make calls, one line each: its arguments (and the container test's variables when set)."""
    return (tmp_path / "make.log.calls").read_text().splitlines()


# what .ci/run asks make for, in order: the isolated environments go once tested, before the container images
CI_TARGETS = [
    *("test", "test-system", "bench-repeat", "validate", "test-vision", "test-align-himl", "test-bench-himl"),
    *("clean-vision", "clean-himl", "clean-torch-layer"),
    *("test-radgraph", "clean-radgraph", "test-radeval", "clean-radeval", "slurm-test", "container-test"),
]


def test_ci_runs_test_vision_slurm_then_containers(tmp_path):
    result, targets = run_ci(tmp_path)
    assert result.returncode == 0, result.stderr
    assert targets == CI_TARGETS
    calls = make_calls(tmp_path)
    assert "validate" in calls  # the whole make validate: every ladder and axis, no subset
    container = next(call for call in calls if call.startswith("container-test"))
    assert "BUILD_ONLY" not in container  # the whole make bench RUNNER=docker, compared with RUNNER=local
    stages = container.split("CONTAINER_TEST_STAGES=")[1].split()
    assert "align-himl" not in stages and {"generate", "llava-report", "report", "validate"} <= set(stages)
    assert "slurm-test: passed" in result.stdout and "container-test: passed" in result.stdout


@pytest.mark.parametrize("target", ["slurm-test", "container-test"])
def test_ci_fails_loudly_on_a_skip_unless_allowed(tmp_path, target):
    result, targets = run_ci(tmp_path, FAKE_SKIP=target)
    assert result.returncode == 77
    assert f"CI: make {target} was SKIPPED, it tested NOTHING" in result.stderr
    assert targets == CI_TARGETS  # the other check still runs
    allowed, _ = run_ci(tmp_path, FAKE_SKIP=target, CHEXBENCH_ALLOW_SKIP="1")
    assert allowed.returncode == 0
    assert f"{target}: SKIPPED" in allowed.stdout and "CHEXBENCH_ALLOW_SKIP=1" in allowed.stderr


def test_ci_stops_at_a_real_failure(tmp_path):
    result, targets = run_ci(tmp_path, FAKE_FAIL="slurm-test")
    assert result.returncode == 2 and targets == CI_TARGETS[:-1]
    result, targets = run_ci(tmp_path, FAKE_FAIL="test")
    assert result.returncode == 2 and targets == ["test"]
