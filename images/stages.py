"""The declared stage interfaces: every tools/<stage>/stage.yml, read and checked.

The files that follow from them (the Makefile's stage lists, the README's stage table, the compose services, the
image build arguments and build context, the Slurm resources) are rendered by images/render.py, and images/lock.py
locks one image per declared stage and variant; tests/test_stages.py checks each stage against its declaration.
It sits with the scripts that use it, in no installed package: no stage reads a declaration at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from chexbench_common.errors import BadInputError

GPU_CHOICES = ("none", "optional", "required")
# stage: a pipeline stage (a run folder, `run`, the Makefile's stage rule, a Slurm row); tool: a declared helper with
# its own image but no `run`, stage rule or Slurm row: it writes a contract table where it is told (chexbench-splits)
# or, as a step of its own make target, a run folder (chexbench-validate's judge, from `make validate`)
KINDS = ("stage", "tool")
STAGE_NAME = re.compile(r"[a-z][a-z0-9-]*")
REQUIRED_KEYS = ("stage", "summary", "gpu", "shards", "inputs", "outputs", "image", "slurm")


@dataclass(frozen=True)
class StageDecl:
    """One stage.yml: the stage's tables (name -> version), GPU need, sharding, image and Slurm resources."""

    name: str
    folder: Path
    summary: str
    gpu: str
    shards: bool
    inputs: dict[str, str]
    outputs: dict[str, str]
    image_description: str
    slurm: dict[str, str] = field(default_factory=dict)
    order: int = 100  # position in the pipeline (tables and lists follow it)
    kind: str = "stage"  # or "tool" (KINDS)
    # image variants: name -> {requirements: a requirements file that replaces the pyproject pins}; a variant's image
    # sets CHEXBENCH_VARIANT=<name> for the stage to read
    variants: dict[str, dict] = field(default_factory=dict)

    def image_names(self) -> list[str]:
        """The stage's image and one per variant: `<stage>` and `<stage>-<variant>`."""
        return [self.name, *(f"{self.name}-{v}" for v in self.variants)]

    @property
    def is_tool(self) -> bool:
        return self.kind == "tool"

    @property
    def in_slurm_chain(self) -> bool:
        """Whether compose/hpc/submit.sh runs this stage by default (`slurm: chain: false` opts out)."""
        return self.slurm.get("chain", "true").lower() == "true"

    @property
    def command(self) -> str:
        return f"chexbench-{self.name}"

    @property
    def package(self) -> str:
        """The stage's source folder relative to the repository root."""
        return f"tools/{self.folder.name}"

    @property
    def uses_gpu(self) -> bool:
        return self.gpu != "none"


def _problems(data: dict, path: Path) -> list[str]:
    kind = data.get("kind", "stage")
    if kind not in KINDS:
        return [f"{path}: kind {kind!r} is not one of {', '.join(KINDS)}"]
    required = [k for k in REQUIRED_KEYS if not (kind == "tool" and k == "slurm")]  # a tool has no Slurm job
    problems = [f"{path}: missing key {k!r}" for k in required if k not in data]
    if problems:
        return problems
    if not STAGE_NAME.fullmatch(str(data["stage"])) or data["stage"] != path.parent.name:
        problems.append(f"{path}: stage {data['stage']!r} must be the folder name {path.parent.name!r}")
    if data["gpu"] not in GPU_CHOICES:
        problems.append(f"{path}: gpu {data['gpu']!r} is not one of {', '.join(GPU_CHOICES)}")
    if not isinstance(data["shards"], bool):
        problems.append(f"{path}: shards must be true or false")
    for key in ("inputs", "outputs"):
        if not isinstance(data[key], dict):
            problems.append(f"{path}: {key} must map table names to versions")
    if not isinstance(data["image"], dict) or "description" not in data["image"]:
        problems.append(f"{path}: image needs a description")
    if kind == "stage" and (not isinstance(data["slurm"], dict) or not {"cpus", "mem", "time"} <= set(data["slurm"])):
        problems.append(f"{path}: slurm needs cpus, mem and time")
    for name, variant in (data.get("variants") or {}).items():
        if not STAGE_NAME.fullmatch(str(name)) or not isinstance(variant, dict) or "requirements" not in variant:
            problems.append(f"{path}: variant {name!r} needs a name like a stage's and a requirements file")
    return problems


def load_stage(path: str | Path) -> StageDecl:
    """Read and check one stage.yml."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot be read as YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a stage.yml must be a mapping")
    problems = _problems(data, path)
    if problems:
        raise BadInputError("\n".join(problems))
    return StageDecl(
        name=data["stage"],
        folder=path.parent,
        summary=str(data["summary"]),
        gpu=data["gpu"],
        shards=data["shards"],
        inputs={str(k): str(v) for k, v in data["inputs"].items()},
        outputs={str(k): str(v) for k, v in data["outputs"].items()},
        image_description=str(data["image"]["description"]),
        slurm={str(k): str(v) for k, v in (data.get("slurm") or {}).items()},
        order=int(data.get("order", 100)),
        kind=str(data.get("kind", "stage")),
        variants={
            str(name): {"requirements": str(v["requirements"])} for name, v in (data.get("variants") or {}).items()
        },
    )


def load_stages(root: str | Path) -> list[StageDecl]:
    """Every tools/<stage>/stage.yml under the repository `root`, in pipeline order (`order`, then name)."""
    return sorted((load_stage(p) for p in Path(root).glob("tools/*/stage.yml")), key=lambda s: (s.order, s.name))
