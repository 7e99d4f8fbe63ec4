import json
from pathlib import Path

import pytest
from chexbench_schema import TABLES
from chexbench_schema.export import json_schemas, markdown_tables, schema_filename, table_json_schema
from chexbench_schema.manifest import MANIFEST_VERSION, manifest_json_schema, markdown_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_documents_every_table_as_in_code():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- tables:begin -->\n", 1)[1].split("<!-- tables:end -->", 1)[0]
    assert section == markdown_tables(), "shared_schema/README.md drifted: paste export.markdown_tables() output"


def test_readme_documents_the_manifest_as_in_code():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- manifest:begin -->\n", 1)[1].split("<!-- manifest:end -->", 1)[0]
    assert section == markdown_manifest(), "shared_schema/README.md drifted: paste manifest.markdown_manifest() output"


def test_exported_json_schemas_match_code():
    schemas = json_schemas()
    assert set(schemas) == {*map(schema_filename, TABLES.values()), f"manifest-{MANIFEST_VERSION}.schema.json"}
    for name, schema in schemas.items():
        path = ROOT / "schemas" / name
        assert path.exists(), f"{path} missing: run python -m chexbench_schema export"
        assert json.loads(path.read_text()) == schema


def test_json_schema_validates_rows_like_the_reader():
    import jsonschema

    schema = table_json_schema(TABLES["metrics"])
    row = {
        "run_id": "r",
        "model": "m",
        "stage": "fidelity",
        "metric": "FID",
        "subset": "all",
        "extractor": None,
        "value": 1.5,
        "ci_low": None,
        "ci_high": None,
        "n_real": 10,
        "n_synth": 10,
        "note": None,
    }
    jsonschema.validate(row, schema)
    bad = dict(row, value="high")
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


DROP = object()


def _manifest(**changes) -> dict:
    """A manifest as StageRun writes one (invented values), with `changes` applied (DROP deletes a field)."""
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "stage": "generate/parts/shard-0-of-2",
        "model": "m",
        "run_id": "r",
        "tool_version": "0.1.0",
        "command": ["chexbench-generate", "run", "--model", "m"],
        "cwd": "/work",
        "params": {"steps": 2, "part": {"index": 0, "count": 2}},
        "inputs": {"prompts": {"path": "p.parquet", "sha256": "a" * 64, "bytes": 10}},
        "weights": {"model_fingerprint": "b" * 64},
        "libraries": {"numpy": "2.4.6"},
        "host": {"hostname": "h", "user": "u", "platform": "Linux", "python": "3.12.3", "gpus": []},
        "started": "2026-01-02T03:04:05+00:00",
        "ended": "2026-01-02T03:05:05+00:00",
        "status": "success",
        "outputs": {"images": "images.parquet"},
        "counts": {"images": 4},  # a stage's own fact
    }
    manifest.update(changes)
    return {k: v for k, v in manifest.items() if v is not DROP}


@pytest.mark.parametrize(
    ("changes", "valid"),
    [
        ({}, True),
        ({"status": "running", "ended": None, "outputs": DROP}, True),
        ({"status": "failed", "error": "images.parquet: file not found"}, True),
        ({"status": "superseded", "superseded_by": {"reason": "shard 0 was started again", "at": "2026-01-02"}}, True),
        ({"status": "done"}, False),
        ({"outputs": DROP}, False),  # a success names what it wrote
        ({"status": "failed"}, False),  # a failure says why
        ({"inputs": {"prompts": {"path": "p.parquet", "sha256": "not a hash", "bytes": 10}}}, False),
        ({"manifest_version": "2.0.0"}, False),
        ({"run_id": DROP}, False),
        ({"host": {"hostname": "h"}}, False),
    ],
)
def test_manifest_schema_tells_a_manifest_from_a_broken_one(changes, valid):
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_json_schema())
    assert validator.is_valid(_manifest(**changes)) is valid, list(validator.iter_errors(_manifest(**changes)))
