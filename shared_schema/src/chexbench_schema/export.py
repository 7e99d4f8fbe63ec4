"""Export the table contracts and the run manifest as JSON Schema files and as Markdown for shared_schema/README.md."""

from __future__ import annotations

import json
from pathlib import Path

from .manifest import MANIFEST_VERSION, manifest_json_schema
from .tables import TABLES, Column, TableSpec

_JSON_TYPES = {
    "string": {"type": "string"},
    "int8": {"type": "integer", "minimum": -128, "maximum": 127},
    "int32": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "int64": {"type": "integer"},
    "float64": {"type": "number"},
    "bool": {"type": "boolean"},
    "vector": {"type": "array", "items": {"type": "number"}, "description": "fixed_size_list<float32>[d]"},
}
_ARROW_NAMES = {"vector": "fixed_size_list<float32>[d]", "bool": "bool"}


def column_json_schema(col: Column) -> dict:
    schema = dict(_JSON_TYPES[col.kind])
    if col.allowed is not None:
        schema["enum"] = list(col.allowed)
    if col.pattern:
        schema["pattern"] = f"^{col.pattern}$"
    if col.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    schema["description"] = col.description
    return schema


def table_json_schema(spec: TableSpec) -> dict:
    """A JSON Schema for one row of the table (x-chexbench-* keys carry what JSON Schema cannot)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"chexbench/{spec.name}/{spec.version}",
        "title": f"chexbench {spec.name} table, version {spec.version}",
        "description": spec.description,
        "type": "object",
        "properties": {c.name: column_json_schema(c) for c in spec.columns},
        "required": spec.column_names,
        "x-chexbench-unique": [list(k) for k in spec.unique],
        "x-chexbench-relative-paths": [c.name for c in spec.columns if c.relative_path],
        "x-chexbench-metadata": {"required": list(spec.required_metadata), "keys": spec.metadata_doc},
    }


def schema_filename(spec: TableSpec) -> str:
    return f"{spec.name}-{spec.version}.schema.json"


MANIFEST_SCHEMA_FILE = f"manifest-{MANIFEST_VERSION}.schema.json"


def json_schemas() -> dict[str, dict]:
    """Every exported file name -> its JSON Schema: one per table, and the run manifest's."""
    schemas = {schema_filename(spec): table_json_schema(spec) for spec in TABLES.values()}
    return schemas | {MANIFEST_SCHEMA_FILE: manifest_json_schema()}


def export_json_schemas(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = folder / name
        path.write_text(json.dumps(schema, indent=2) + "\n")
        written.append(path)
    return written


def markdown_table(spec: TableSpec) -> str:
    """The README section of one table: heading, description, column table, keys and metadata."""
    lines = [
        f"### `{spec.name}` (version {spec.version})",
        "",
        spec.description,
        "",
        "| column | type | nullable | allowed | description |",
        "|---|---|---|---|---|",
    ]
    for c in spec.columns:
        allowed = "/".join(str(a) for a in c.allowed) if c.allowed else ("relative path" if c.relative_path else "")
        kind = _ARROW_NAMES.get(c.kind, c.kind)
        lines.append(f"| `{c.name}` | {kind} | {'yes' if c.nullable else 'no'} | {allowed} | {c.description} |")
    lines.append("")
    lines.append("Unique: " + ", ".join("(" + ", ".join(k) + ")" for k in spec.unique) if spec.unique else "Unique: -")
    if spec.metadata_doc:
        lines.append("")
        lines.append("Metadata (`extra` in the file's chexbench metadata):")
        for key, doc in spec.metadata_doc.items():
            required = " (required)" if key in spec.required_metadata else ""
            lines.append(f"- `{key}`{required}: {doc}")
    return "\n".join(lines) + "\n"


def markdown_tables() -> str:
    return "\n".join(markdown_table(spec) for spec in TABLES.values())
