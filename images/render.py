"""Render the container and Slurm files that follow from the stage declarations (tools/<stage>/stage.yml).

One recipe (images/Dockerfile) builds every stage; what differs per stage comes from its stage.yml:

- the build arguments of `make image STAGE=...` (STAGE, GPU, DESCRIPTION, and TORCH_LAYER from the stage's lock:
  `torch` when it has torch, so the image starts from the shared torch layer): `build-args <stage>`;
- images/Dockerfile.dockerignore: only the lock files and sources a stage image installs reach the build (buildah
  does not re-include files through a wildcard folder such as `!tools/*/src`, so every stage is listed);
- the services of compose/compose.yaml (between the generated-block markers): one per stage, GPU reservation iff
  `gpu` is not `none`, build arguments as above; compose/compose.cpu.yaml drops the reservations again;
- compose/hpc/stages.tsv: the Slurm resources per stage, read by compose/hpc/submit.sh with awk (a login node needs
  neither the venv nor PyYAML);
- mk/stages.mk (the Makefile's stage lists) and the README's stage table (tests/test_stages.py checks them too).

The declarations are read by images/stages.py, this script's sibling module.

Usage (from the repository root, in the development venv):
  python images/render.py write          rewrite every generated file
  python images/render.py check          exit 1, one line per stale file (the test suite runs this too)
  python images/render.py build-args S   the shell-quoted --build-arg list of stage S
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

from stages import StageDecl, load_stages

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = "images/Dockerfile"
BEGIN = "  # --- generated from tools/*/stage.yml by `python images/render.py write`; do not edit by hand ---"
END = "  # --- end of the generated services ---"
README_BLOCK = re.compile(r"(<!-- stage table:[^\n]*-->\n)(.*?)(<!-- end of the stage table -->)", re.S)
TSV_COLUMNS = ("stage", "gpu", "shards", "cpus", "mem", "time", "chain")
LOCAL_PACKAGES = ("shared_schema", "tools/common")
SHARED_LAYERS = ("torch",)  # images/layers/<layer>.lock, written by images/lock.py


def torch_layer(lock_dir: str, root: Path = ROOT) -> str:
    """The shared layer an image installs first (images/Dockerfile TORCH_LAYER): `torch` when its lock has torch."""
    lock = root / "images" / lock_dir / "requirements.lock"
    has_torch = lock.is_file() and re.search(r"^torch\s*(==|@)", lock.read_text(), re.M)
    return "torch" if has_torch else "none"


def build_args(stage: StageDecl, variant: str | None = None) -> dict[str, str]:
    """The per-stage (or per-variant) build arguments of images/Dockerfile."""
    args = {"STAGE": stage.name, "GPU": stage.gpu, "DESCRIPTION": stage.image_description}
    if variant:
        args |= {"VARIANT": variant, "LOCK_DIR": f"{stage.name}-{variant}"}
        args["DESCRIPTION"] += f" ({variant} variant)"
    args["TORCH_LAYER"] = torch_layer(args.get("LOCK_DIR", stage.name), stage.folder.parents[1])
    return args


def images(stages: list[StageDecl]) -> dict[str, tuple[StageDecl, str | None]]:
    """Every image name -> (its stage, its variant or None): `<stage>` and `<stage>-<variant>`."""
    out = {}
    for stage in stages:
        out[stage.name] = (stage, None)
        out |= {f"{stage.name}-{v}": (stage, v) for v in stage.variants}
    return out


def dockerignore(stages: list[StageDecl]) -> str:
    lines = [
        "# Generated from tools/*/stage.yml by `python images/render.py write`; do not edit by hand.",
        "# BuildKit and buildah read <Dockerfile>.dockerignore next to the Dockerfile: only the files a stage image",
        "# installs reach the build (the Dockerfile COPYs those of --build-arg STAGE only).",
        "*",
    ]
    lines += [f"!images/layers/{layer}.lock" for layer in SHARED_LAYERS]
    for name in images(stages):
        lines += [f"!images/{name}/requirements.lock", f"!images/{name}/nodeps.lock"]
    for package in (*LOCAL_PACKAGES, *(stage.package for stage in stages)):
        lines += [f"!{package}/pyproject.toml", f"!{package}/src"]
    lines += ["**/__pycache__", "**/*.egg-info", "**/*.pyc"]
    return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    """A YAML double-quoted scalar that compose does not interpolate."""
    return json.dumps(value.replace("$", "$$"))


def compose_services(stages: list[StageDecl]) -> str:
    """The generated block of compose/compose.yaml's services (markers included)."""
    lines = [BEGIN]
    for s, (stage, variant) in images(stages).items():
        lines += [
            f"  {s}:",
            "    <<: *stage",
            f'    image: "${{IMAGE_REPO:-chexbench}}/{s}:${{IMAGE_TAG:-0.1.0}}"',
            "    build:",
            "      context: ..",
            f"      dockerfile: {DOCKERFILE}",
            "      args:",
            *(f"        {k}: {_quote(v)}" for k, v in build_args(stage, variant).items()),
            '        VERSION: "${IMAGE_TAG:-0.1.0}"',
            f"    profiles: [{s}]",
            f'    command: ["{stage.command}", "--help"]',
        ]
        if stage.uses_gpu:
            lines.append("    deploy: *gpu")
        lines.append("")
    lines[-1] = END
    return "\n".join(lines) + "\n"


def compose_cpu(stages: list[StageDecl]) -> str:
    lines = [
        "# Generated from tools/*/stage.yml by `python images/render.py write`; do not edit by hand.",
        "# Override for docker hosts without an NVIDIA GPU: drops the GPU reservations of the stages that declare a",
        "# GPU (gpu: optional or required), so they run on CPU (slowly; fine for the tiny demo models). After the main",
        "# file: docker compose -f compose/compose.yaml -f compose/compose.cpu.yaml --profile embed run --rm embed ...",
        "services:",
    ]
    for name, (stage, _) in images(stages).items():
        if stage.uses_gpu:
            lines += [f"  {name}:", "    deploy: !reset {}"]
    return "\n".join(lines) + "\n"


def slurm_table(stages: list[StageDecl]) -> str:
    rows = ["# Generated from tools/*/stage.yml by `python images/render.py write`; read by compose/hpc/submit.sh."]
    rows.append("\t".join(TSV_COLUMNS))
    for stage in (s for s in stages if not s.is_tool):
        shards = "true" if stage.shards else "false"
        resources = [stage.slurm[k] for k in ("cpus", "mem", "time")]
        rows.append("\t".join([stage.name, stage.gpu, shards, *resources, str(stage.in_slurm_chain).lower()]))
    return "\n".join(rows) + "\n"


def make_fragment(stages: list[StageDecl]) -> str:
    """mk/stages.mk: the Makefile's stage lists."""

    def names(keep) -> str:
        return " ".join(s.name for s in stages if not s.is_tool and keep(s))

    return (
        "# Generated from tools/*/stage.yml by `python images/render.py write`; do not edit by hand.\n"
        f"STAGES         := {names(lambda s: True)}\n"
        f"GPU_STAGES     := {names(lambda s: s.uses_gpu)}\n"
        f"SHARDED_STAGES := {names(lambda s: s.shards)}\n"
        f"IMAGE_NAMES    := {' '.join(n for s in stages for n in s.image_names())}\n"
    )


def readme_table(stages: list[StageDecl]) -> str:
    """The README's stage table (between its generated-block markers)."""
    gpu = {"none": "no", "optional": "optional", "required": "yes"}
    lines = ["| stage | GPU | shards | reads | writes | what it does |", "|---|---|---|---|---|---|"]
    for s in (s for s in stages if not s.is_tool):
        reads = ", ".join(f"`{t}` {v}.x" for t, v in s.inputs.items())
        writes = ", ".join(f"`{t}` {v}" for t, v in s.outputs.items())
        lines.append(
            f"| [`{s.name}`]({s.package}/README.md) | {gpu[s.gpu]} | {'yes' if s.shards else 'no'} | {reads} | "
            f"{writes} | {s.summary} |"
        )
    return "\n".join(lines) + "\n"


def _with_services(text: str, block: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit("images/render.py: compose/compose.yaml lacks the generated-services markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + block.rstrip("\n") + tail


def rendered(root: Path = ROOT) -> dict[Path, str]:
    """Every generated file (path -> wanted text). mk/stages.mk and README.md only where they exist (the README
    only when it has the stage-table markers)."""
    stages = load_stages(root)
    compose = root / "compose" / "compose.yaml"
    out = {
        root / "images" / "Dockerfile.dockerignore": dockerignore(stages),
        compose: _with_services(compose.read_text(), compose_services(stages)),
        root / "compose" / "compose.cpu.yaml": compose_cpu(stages),
        root / "compose" / "hpc" / "stages.tsv": slurm_table(stages),
    }
    if (root / "mk").is_dir():
        out[root / "mk" / "stages.mk"] = make_fragment(stages)
    readme = root / "README.md"
    if readme.is_file() and README_BLOCK.search(readme.read_text()):
        table = readme_table(stages)
        out[readme] = README_BLOCK.sub(lambda m: m.group(1) + table + m.group(3), readme.read_text(), count=1)
    return out


def stale(root: Path = ROOT) -> list[str]:
    """One line per generated file that does not match the stage declarations."""
    out = []
    for path, text in rendered(root).items():
        if not path.is_file() or path.read_text() != text:
            out.append(f"{path.relative_to(root)} is stale: run `python images/render.py write`")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("write", help="rewrite every generated file")
    sub.add_parser("check", help="exit 1 when a generated file is stale")
    ba = sub.add_parser("build-args", help="the --build-arg list of one stage, shell-quoted")
    ba.add_argument("stage")
    args = ap.parse_args(argv)
    if args.cmd == "write":
        for path, text in rendered().items():
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
                print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if args.cmd == "check":
        problems = stale()
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    known = images(load_stages(ROOT))
    if args.stage not in known:
        print(f"images/render.py: unknown stage {args.stage!r} (one of {', '.join(known)})", file=sys.stderr)
        return 2
    print(" ".join(f"--build-arg {shlex.quote(f'{k}={v}')}" for k, v in build_args(*known[args.stage]).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
