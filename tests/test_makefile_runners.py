"""The stage command line is the same under every RUNNER; only the prefix that runs it changes.

Reads what `make -n <stage> RUNNER=...` would run and checks, for every stage: the same `chexbench-<stage> <cmd>
ARGS` tail under local, docker and apptainer; the docker prefix names the stage's compose service; the apptainer
prefix has --nv for GPU stages only, a clean environment, no home and the explicit binds; and `make help` lists
every documented target.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS = '--model demo --run-id r1 --prompts "MIMIC_Splits/prompts test.parquet" --seed 7'
FIXED = {
    "RESULTS": "Results",
    "SIF_DIR": "/sif",
    "IMAGE_TAG": "9.9.9",
    "MIMIC_ROOT": str(ROOT / "MIMIC_Splits" / "fixtures"),  # must exist: apptainer binds it only then
    "CACHE_DIR": "/scratch/chexbench-cache",
    "VENV": ".venv",
    "HF_HUB_OFFLINE": "1",
}


def make(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, check=check, timeout=60
    )


def make_var(name: str, tmp_path: Path) -> str:
    """The value of a Makefile variable, as make computes it."""
    printer = tmp_path / "print.mk"
    printer.write_text("print-%:\n\t@echo '$($*)'\n")
    return make("-s", "-f", "Makefile", "-f", str(printer), f"print-{name}").stdout.strip()


@pytest.fixture(scope="module")
def stages(tmp_path_factory) -> tuple[list[str], set[str]]:
    tmp = tmp_path_factory.mktemp("mk")
    return make_var("STAGES", tmp).split(), set(make_var("GPU_STAGES", tmp).split())


def stage_command(stage: str, runner: str, cmd: str | None = None) -> list[str]:
    """The one command line `make <stage>` runs (the line that ends with ARGS), split like the shell does."""
    extra = [f"CMD={cmd}"] if cmd else []
    out = make("-n", stage, f"RUNNER={runner}", f"ARGS={ARGS}", *extra, *(f"{k}={v}" for k, v in FIXED.items()))
    lines = [line for line in out.stdout.splitlines() if line.rstrip().endswith(ARGS)]
    assert len(lines) == 1, f"expected one stage command line, got:\n{out.stdout}"
    return shlex.split(lines[0])


def split_at_console_script(stage: str, tokens: list[str]) -> tuple[list[str], str, list[str]]:
    """(prefix, console script token, rest) around the chexbench-<stage> token."""
    script = f"chexbench-{stage}"
    idx = [i for i, tok in enumerate(tokens) if tok == script or tok.endswith("/" + script)]
    assert idx, f"{script} not in {tokens}"
    i = idx[-1]
    return tokens[:i], tokens[i], tokens[i + 1 :]


def test_stage_lists_are_sane(stages):
    names, gpu = stages
    assert {"generate", "embed", "fidelity"} <= set(names)
    assert {"generate", "embed"} <= gpu and "fidelity" not in gpu
    assert gpu <= set(names)


@pytest.mark.parametrize("cmd", [None, "merge"])
def test_same_stage_command_under_every_runner(stages, cmd):
    names, _ = stages
    for stage in names:
        tails = {}
        for runner in ("local", "docker", "apptainer"):
            _, script, rest = split_at_console_script(stage, stage_command(stage, runner, cmd))
            assert Path(script).name == f"chexbench-{stage}"
            tails[runner] = rest
        expected = [cmd or "run", *shlex.split(ARGS)]
        assert tails == {"local": expected, "docker": expected, "apptainer": expected}, stage


def test_local_runner_has_no_prefix(stages):
    for stage in stages[0]:
        prefix, script, _ = split_at_console_script(stage, stage_command(stage, "local"))
        assert prefix == []
        assert script == f"{FIXED['VENV']}/bin/chexbench-{stage}"


def test_docker_runner_runs_the_stage_service_of_the_compose_file(stages):
    for stage in stages[0]:
        prefix, script, _ = split_at_console_script(stage, stage_command(stage, "docker"))
        assert script == f"chexbench-{stage}"
        assert prefix[:2] == ["docker", "compose"]
        compose_file = prefix[prefix.index("-f") + 1]
        assert (ROOT / compose_file).is_file()
        assert prefix[prefix.index("--profile") + 1] == stage
        # `run --rm <service>` directly before the console script: the service is the stage
        assert prefix[-3:] == ["run", "--rm", stage]


def parse_binds(prefix: list[str]) -> dict[str, tuple[str, bool]]:
    binds = {}
    for i, tok in enumerate(prefix):
        if tok in ("--bind", "-B"):
            src, dst, *opts = prefix[i + 1].split(":")
            binds[dst] = (src, "ro" in opts)
    return binds


def test_apptainer_runner_flags(stages):
    names, gpu = stages
    for stage in names:
        prefix, script, _ = split_at_console_script(stage, stage_command(stage, "apptainer"))
        assert prefix[:2] == ["apptainer", "exec"]
        assert script == f"chexbench-{stage}"
        assert ("--nv" in prefix) == (stage in gpu), stage
        assert {"--cleanenv", "--no-home"} <= set(prefix)
        assert prefix[prefix.index("--pwd") + 1] == "/work"
        assert prefix[-1] == f"{FIXED['SIF_DIR']}/chexbench-{stage}_{FIXED['IMAGE_TAG']}.sif"
        assert parse_binds(prefix) == {
            "/work/Results": (str(ROOT / "Results"), False),
            "/work/assets": (str(ROOT / "assets"), True),
            "/work/MIMIC_Splits": (str(ROOT / "MIMIC_Splits"), True),
            "/data/mimic": (FIXED["MIMIC_ROOT"], True),
            "/cache": (FIXED["CACHE_DIR"], False),
        }
        env = dict(kv.split("=", 1) for kv in prefix[prefix.index("--env") + 1].split(","))
        assert env["CHEXBENCH_CACHE_DIR"] == "/cache"
        assert env["HF_HUB_OFFLINE"] == "1"


def test_apptainer_binds_mimic_only_when_it_exists():
    out = make("-n", "embed", "RUNNER=apptainer", f"ARGS={ARGS}", "MIMIC_ROOT=/nonexistent/mimic")
    line = next(line for line in out.stdout.splitlines() if line.rstrip().endswith(ARGS))
    assert "/data/mimic" not in line and "/work/Results" in line


def test_unknown_runner_is_refused():
    out = make("-n", "embed", "RUNNER=podman", check=False)
    assert out.returncode != 0
    assert "RUNNER must be local, docker or apptainer" in out.stderr


def documented_targets() -> dict[str, str]:
    """target -> description of every `target: ... ## description` line in the Makefile and what it includes."""
    files = [ROOT / "Makefile"]
    for line in (ROOT / "Makefile").read_text().splitlines():
        if m := re.match(r"^-?include\s+(.+)$", line):
            files += [ROOT / f for f in m.group(1).split() if (ROOT / f).is_file()]
    targets = {}
    for f in files:
        for line in f.read_text().splitlines():
            if m := re.match(r"^([a-zA-Z_-]+):.*?## (.*)$", line):
                targets[m.group(1)] = m.group(2).strip()
    return targets


def test_make_help_lists_every_documented_target_and_stage(stages):
    out = make("help").stdout
    listed = {}
    for line in out.splitlines():
        if m := re.match(r"^  (\S+)\s+(.*)$", line):
            listed[m.group(1)] = m.group(2).strip()
    targets = documented_targets()
    assert {"help", "setup", "test", "lint", "bench"} <= set(targets)
    for target, description in targets.items():
        assert listed.get(target) == description, f"`make help` does not list {target}"
    for stage in stages[0]:
        assert re.search(rf"\b{re.escape(stage)}\b", out), f"`make help` does not mention the {stage} stage"
