import json
from pathlib import Path

from chexbench_schema import TABLES
from chexbench_schema.export import markdown_tables, schema_filename, table_json_schema

ROOT = Path(__file__).resolve().parents[1]


def test_readme_documents_every_table_as_in_code():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- tables:begin -->\n", 1)[1].split("<!-- tables:end -->", 1)[0]
    assert section == markdown_tables(), "shared_schema/README.md drifted: paste export.markdown_tables() output"


def test_exported_json_schemas_match_code():
    for spec in TABLES.values():
        path = ROOT / "schemas" / schema_filename(spec)
        assert path.exists(), f"{path} missing: run python -m chexbench_schema export"
        assert json.loads(path.read_text()) == table_json_schema(spec)


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
