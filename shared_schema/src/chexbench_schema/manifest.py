"""The run manifest: `<results>/<model>/<run_id>/<stage>/manifest.json`, the one file besides the tables that crosses a
stage boundary (the report, the merges, compare-runs and `fidelity run` read other stages' manifests).

The runtime writes it (`chexbench_common.rundir.StageRun`); this module is its contract: the fields every manifest
has, their meaning, and a JSON Schema of it for readers in any language. A stage may record more facts of its own
(counts, truncations, the engine used, ...) next to these, as a table may carry extra columns: readers ignore fields
they do not know. Versioned like the tables: a new optional field is a minor bump, a rename, a type change or a
change of meaning a major bump (and a readers' check).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInputError

MANIFEST = "manifest.json"
MANIFEST_VERSION = "1.0.0"
MANIFEST_MAJOR = int(MANIFEST_VERSION.split(".")[0])
STATUSES = ("running", "success", "failed", "superseded")

_TEXT = {"type": "string"}
_TEXTS = {"type": "object", "additionalProperties": _TEXT}
_TIME = {"type": "string", "format": "date-time"}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


@dataclass(frozen=True)
class ManifestField:
    """One top-level field of the manifest: its JSON Schema, what it means, whether every manifest has it."""

    name: str
    schema: dict
    description: str
    required: bool = True


MANIFEST_FIELDS = (
    ManifestField(
        "manifest_version",
        {"type": "string", "pattern": rf"^{MANIFEST_MAJOR}\.[0-9]+\.[0-9]+$"},
        f"Version of this layout (semver; a reader accepts every {MANIFEST_MAJOR}.x).",
    ),
    ManifestField(
        "stage",
        {"type": "string", "minLength": 1},
        "The stage folder inside the run: `fidelity`, or a step's or shard's folder such as "
        "`generate/parts/shard-0-of-2` or `llava-report/finetune-p100`.",
    ),
    ManifestField("model", {"type": "string", "minLength": 1}, "Model evaluated (the `<model>` folder)."),
    ManifestField("run_id", {"type": "string", "minLength": 1}, "Run id (the `<run_id>` folder)."),
    ManifestField(
        "tool_version",
        _TEXT,
        "Version of the chexbench package that ran; a finished run of another version is not reused.",
    ),
    ManifestField("command", {"type": "array", "items": _TEXT}, "The command line as given (relative paths and all)."),
    ManifestField("cwd", _TEXT, "The folder the command ran in: what its relative paths are relative to."),
    ManifestField(
        "params",
        {"type": "object"},
        "Every setting that changes the result, as JSON; a run is skipped only when these and the inputs' sha256 "
        "are equal. A shard's own part is under `params.part`.",
    ),
    ManifestField(
        "inputs",
        {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"path": _TEXT, "sha256": _SHA256, "bytes": {"type": "integer", "minimum": 0}},
                "required": ["path", "sha256", "bytes"],
            },
        },
        "Each input file or folder by name: its path as given, sha256 (of a folder: of its sorted file list and "
        "their sha256) and size in bytes.",
    ),
    ManifestField("weights", _TEXTS, "Each model used by name: the sha256 (or fingerprint, or path) of its weights."),
    ManifestField("libraries", _TEXTS, "Versions of the libraries that shape the numbers (distribution -> version)."),
    ManifestField(
        "host",
        {
            "type": "object",
            "properties": {
                "hostname": _TEXT,
                "user": _TEXT,
                "platform": _TEXT,
                "python": _TEXT,
                "gpus": {"type": "array", "items": _TEXT},
            },
            "required": ["hostname", "user", "platform", "python", "gpus"],
        },
        "Where it ran: host name, user, platform, Python version, and the GPUs as nvidia-smi names them "
        "(name, driver, memory; empty without one).",
    ),
    ManifestField("started", _TIME, "When the run started (UTC, ISO 8601)."),
    ManifestField("ended", {"anyOf": [_TIME, {"type": "null"}]}, "When it succeeded or failed; null while running."),
    ManifestField(
        "status",
        {"enum": list(STATUSES)},
        "`running`; `success` (its outputs count only together with the `_SUCCESS` marker, written last); `failed` "
        "(see `error`); `superseded` (a finished result that stopped counting, see `superseded_by`).",
    ),
    ManifestField(
        "outputs",
        _TEXTS,
        "What the run wrote, by name: a path relative to the stage folder (absolute when outside it). Every "
        "successful manifest has it; a re-run removes these files before it starts.",
        required=False,
    ),
    ManifestField("error", _TEXT, "Why the run failed: one line. Every failed manifest has it.", required=False),
    ManifestField(
        "superseded_by",
        {"type": "object", "properties": {"reason": _TEXT, "at": _TIME}, "required": ["reason", "at"]},
        "Why and when a finished result stopped counting (e.g. one of its shards was started again).",
        required=False,
    ),
    ManifestField(
        "superseded_by_failed_run",
        {
            "type": "object",
            "properties": {"command": {"type": "array", "items": _TEXT}, "at": _TIME},
            "required": ["command", "at"],
        },
        "A successful result voided by a re-run refused before it started (its bad inputs): that command and when.",
        required=False,
    ),
)


def read_manifest(folder: str | Path, *, missing_ok: bool = False) -> dict:
    """The manifest of a stage folder, as a dict. A folder without one gives {} with `missing_ok`; otherwise a missing,
    unreadable or non-object manifest is a BadInputError naming the file. Whether the run finished is not checked
    here (a finished run also has _SUCCESS: `chexbench_common.rundir.is_finished`)."""
    path = Path(folder) / MANIFEST
    if missing_ok and not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"{path}: no manifest (not a stage folder, or its run never started)") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot be read as JSON ({exc}); delete it and rerun that stage") from None
    if not isinstance(manifest, dict):
        raise BadInputError(f"{path}: not a manifest (a JSON object is expected); delete it and rerun that stage")
    return manifest


def manifest_json_schema() -> dict:
    """A JSON Schema (2020-12) of one manifest.json; fields a stage adds of its own are allowed."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"chexbench/manifest/{MANIFEST_VERSION}",
        "title": f"chexbench run manifest, version {MANIFEST_VERSION}",
        "description": __doc__.split("\n\n")[0].replace("\n", " "),
        "type": "object",
        "properties": {f.name: dict(f.schema, description=f.description) for f in MANIFEST_FIELDS},
        "required": [f.name for f in MANIFEST_FIELDS if f.required],
        "additionalProperties": True,
        "allOf": [
            {"if": {"properties": {"status": {"const": "success"}}}, "then": {"required": ["outputs"]}},
            {"if": {"properties": {"status": {"const": "failed"}}}, "then": {"required": ["error"]}},
        ],
    }


def markdown_manifest() -> str:
    """The README's table of the manifest's fields."""
    lines = ["| field | required | description |", "|---|---|---|"]
    for f in MANIFEST_FIELDS:
        lines.append(f"| `{f.name}` | {'yes' if f.required else 'no'} | {f.description} |")
    return "\n".join(lines) + "\n"
