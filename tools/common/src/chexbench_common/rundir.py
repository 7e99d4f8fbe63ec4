"""Run directories: Results/<model>/<run_id>/<stage>/ with manifest.json and a _SUCCESS marker written last.

A stage folder counts as finished only when _SUCCESS exists *and* its manifest says `success`; a stage skips its
work only when it is finished *and* the manifest's inputs (sha256) and params match. Stages drive a StageRun through
`chexbench_common.lifecycle.Lifecycle`, which adds the folder lock and the failure rule.
"""

from __future__ import annotations

import datetime as dt
import getpass
import importlib.metadata
import json
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from chexbench_schema.errors import BadInputError
from chexbench_schema.manifest import MANIFEST, MANIFEST_VERSION, read_manifest

from .atomic import write_json_atomic, write_text_atomic
from .hashing import sha256_path

SUCCESS = "_SUCCESS"
DEFAULT_LIBRARIES = (
    "chexbench-schema",
    "chexbench-common",
    "numpy",
    "pandas",
    "pyarrow",
    "torch",
    "diffusers",
    "transformers",
    "scipy",
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def library_versions(names=DEFAULT_LIBRARIES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def gpu_description() -> list[str]:
    """GPU names and driver from nvidia-smi, or [] where there is none (no torch import needed)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def describe_inputs(inputs: dict[str, str | Path]) -> dict[str, dict]:
    """{name: {path, sha256, bytes}} for each input file or folder."""
    described = {}
    for name, path in sorted(inputs.items()):
        path = Path(path)
        size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        described[name] = {"path": str(path), "sha256": sha256_path(path), "bytes": size}
    return described


def run_folder(results: str | Path, model: str, run_id: str) -> Path:
    """`<results>/<model>/<run_id>/`: the one place the run layout is spelled out."""
    return Path(results) / model / run_id


def generated_images(results: str | Path, model: str, run_id: str) -> Path:
    """The run's generate images table: what the stages that read generations use when not given one."""
    return run_folder(results, model, run_id) / "generate" / "images.parquet"


def recorded_path(manifest: dict, recorded: str | Path) -> Path:
    """A path a manifest recorded: a relative one is resolved in the folder the stage ran in (its `cwd`) when it
    exists there, else left relative to the current folder."""
    path, ran_in = Path(recorded), manifest.get("cwd")
    if not path.is_absolute() and ran_in and (Path(ran_in) / path).exists():
        return Path(ran_in) / path
    return path


def is_finished(folder: str | Path) -> bool:
    """Whether a stage folder holds a finished run: _SUCCESS and a manifest that says success."""
    folder = Path(folder)
    if not (folder / SUCCESS).exists():
        return False
    try:
        return read_manifest(folder).get("status") == "success"
    except BadInputError:
        return False


def _normalise(params: dict) -> dict:
    return json.loads(json.dumps(params, sort_keys=True, default=str))


class StageRun:
    """One stage of one run; call start(), then finish() or fail()."""

    def __init__(self, results: str | Path, model: str, run_id: str, stage: str, *, tool_version: str):
        self.dir = run_folder(results, model, run_id) / stage
        self.model, self.run_id, self.stage, self.tool_version = model, run_id, stage, tool_version
        self.manifest: dict = {}

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    @property
    def success_path(self) -> Path:
        return self.dir / SUCCESS

    def read_manifest(self) -> dict:
        """This folder's manifest; {} before its first run."""
        return read_manifest(self.dir, missing_ok=True)

    def is_finished(self) -> bool:
        """_SUCCESS exists and the manifest says success: the folder's outputs may be used and collected."""
        return is_finished(self.dir)

    def is_complete(self, params: dict, inputs: dict[str, str | Path]) -> bool:
        """True only if the folder is finished by the same tool version and the recorded inputs and params equal the
        requested ones (a new version may compute more or differently: it recomputes)."""
        if not self.is_finished():
            return False
        old = self.read_manifest()
        if old.get("tool_version") != self.tool_version:
            return False
        if old.get("params") != _normalise(params):
            return False
        recorded = {k: v.get("sha256") for k, v in old.get("inputs", {}).items()}
        return recorded == {k: v["sha256"] for k, v in describe_inputs(inputs).items()}

    def start(self, params: dict, inputs: dict[str, str | Path], weights: dict[str, str] | None = None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.success_path.unlink(missing_ok=True)
        self.manifest = {
            "manifest_version": MANIFEST_VERSION,
            "stage": self.stage,
            "model": self.model,
            "run_id": self.run_id,
            "tool_version": self.tool_version,
            "command": sys.argv,
            "cwd": str(Path.cwd()),  # what the relative paths of the command, params and inputs are relative to
            "params": _normalise(params),
            "inputs": describe_inputs(inputs),
            "weights": dict(weights or {}),
            "libraries": library_versions(),
            "host": {
                "hostname": socket.gethostname(),
                "user": getpass.getuser(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "gpus": gpu_description(),
            },
            "started": _now(),
            "ended": None,
            "status": "running",
        }
        write_json_atomic(self.manifest_path, self.manifest)

    def update(self, **fields) -> None:
        """Record extra facts (counts, truncations, outputs) in the manifest."""
        self.manifest.update(_normalise(fields))
        write_json_atomic(self.manifest_path, self.manifest)

    def finish(self, outputs: dict[str, str | Path] | None = None) -> None:
        """Mark success: the manifest first, the _SUCCESS marker last."""
        self.manifest.update(
            status="success",
            ended=_now(),
            outputs={
                k: str(Path(v).relative_to(self.dir) if Path(v).is_relative_to(self.dir) else v)
                for k, v in (outputs or {}).items()
            },
        )
        write_json_atomic(self.manifest_path, self.manifest)
        write_text_atomic(self.success_path, _now() + "\n")

    def supersede(self, reason: str) -> None:
        """The folder's finished result stops counting (e.g. one of its shards is being redone): _SUCCESS first."""
        if not self.success_path.exists():
            return
        self.success_path.unlink(missing_ok=True)
        manifest = self.read_manifest()
        if manifest:
            manifest.update(status="superseded", superseded_by={"reason": reason, "at": _now()})
            write_json_atomic(self.manifest_path, manifest)

    def fail(self, message: str) -> None:
        """Mark the folder failed: this run's manifest, or, before start(), the previous run's (its outputs stop
        counting). _SUCCESS goes first, so a crash in between never leaves a success marker over a failure."""
        self.success_path.unlink(missing_ok=True)
        manifest = self.manifest or self.read_manifest()
        if manifest:
            if not self.manifest and manifest.get("status") == "success":
                manifest["superseded_by_failed_run"] = {"command": sys.argv, "at": _now()}
            manifest.update(status="failed", ended=_now(), error=message)
            self.manifest = manifest
            write_json_atomic(self.manifest_path, manifest)
