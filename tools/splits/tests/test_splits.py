"""chexbench-splits: LLaVA-Rad annotation CSVs -> prompts tables, on invented fixtures and broken variants of them."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chexbench_schema import read_metadata, read_table
from chexbench_schema.labels import CHEXPERT_LABELS
from chexbench_schema.tables import prompt_id
from chexbench_splits.cli import main
from chexbench_splits.splits import LLAVARAD_COLUMNS, parse_labels, study_id_from_path
from click.testing import CliRunner

FIXTURES = Path(__file__).resolve().parents[3] / "MIMIC_Splits" / "fixtures"
TEST_CSV = FIXTURES / "LLAVARAD_ANNOTATIONS_TEST.csv"
TRAIN_CSV = FIXTURES / "LLAVARAD_ANNOTATIONS_TRAIN.csv"
BAD_CSV = FIXTURES / "bad" / "LLAVARAD_ANNOTATIONS_MALFORMED.csv"
PREFIX = "chexbench-splits: error: "


def load_rows(path: Path = TEST_CSV) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_rows(path: Path, rows: list[dict], columns=LLAVARAD_COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def convert(src: Path, out: Path, *extra: str):
    return run("convert", "--input", src, "--split", "test", "--out", out, *extra)


def labels_of(row: dict) -> dict:
    return eval(row["chexpert_labels"], {"__builtins__": {}})  # independent of the parser under test


def by_path(frame: pd.DataFrame) -> dict[str, pd.Series]:
    return {r.image_path: r for r in (frame.iloc[i] for i in range(len(frame)))}


def test_convert_test_fixture(tmp_path):
    out = tmp_path / "prompts_test.parquet"
    result = convert(TEST_CSV, out)
    assert result.exit_code == 0, result.output
    assert "7 prompts from 8 rows (1 repeated prompt(s) dropped" in result.output
    frame = read_table(out, "prompts")
    source = load_rows()
    kept = [r for i, r in enumerate(source) if i != 5]  # data row 6 repeats row 2's prompt
    assert len(frame) == 7
    assert frame["prompt"].tolist() == [r["annotated_prompt"] for r in kept]
    assert frame["id"].tolist() == [r["id"] for r in kept]
    assert frame["patient_id"].tolist() == [r["patientID"] for r in kept]
    assert frame["view"].tolist() == [r["view"] for r in kept]
    assert set(frame["view"]) == {"AP", "PA"}
    assert (frame["split"] == "test").all()
    expected_ids = ["p" + hashlib.sha256(r["annotated_prompt"].encode()).hexdigest()[:16] for r in kept]
    assert frame["prompt_id"].tolist() == expected_ids
    assert frame["study_id"].tolist() == [r["path"].split("/")[3] for r in kept]
    for row, (_, got) in zip(kept, frame.iterrows(), strict=True):
        for label, value in labels_of(row).items():
            want = None if value is None else (0 if value == -1 else int(value))
            assert (None if pd.isna(got[label]) else int(got[label])) == want, (row["id"], label)
    assert str(frame["Atelectasis"].dtype) == "Int8"
    meta = read_metadata(out)
    assert meta["table"] == "prompts" and meta["extra"]["uncertainty_policy"] == "u-zeros"


def test_manifest_records_input_policy_and_dropped_rows(tmp_path):
    out = tmp_path / "p.parquet"
    assert convert(TEST_CSV, out).exit_code == 0
    manifest = json.loads((tmp_path / "p.parquet.manifest.json").read_text())
    assert manifest["input"] == {"path": str(TEST_CSV), "sha256": hashlib.sha256(TEST_CSV.read_bytes()).hexdigest()}
    assert manifest["split"] == "test"
    assert manifest["uncertainty_policy"] == "u-zeros"
    assert manifest["uncertain_labels"] == {"count": 3, "written_as": 0}
    assert (manifest["rows_in"], manifest["rows_out"]) == (8, 7)
    assert manifest["tool_version"]
    dedup = manifest["deduplication"]
    assert (dedup["key"], dedup["keep"], dedup["dropped"]) == ("annotated_prompt", "first", 1)
    second = load_rows()[5]
    assert dedup["rows"] == [
        {"row": 6, "line": 7, "id": second["id"], "image_path": second["path"], "kept_row": 2, "labels_differ": False}
    ]
    assert manifest["positives"]["Support Devices"] == 2


def test_train_fixture_records_repeat_with_different_labels(tmp_path):
    out = tmp_path / "prompts_train.parquet"
    result = run("convert", "--input", TRAIN_CSV, "--split", "train", "--out", out)
    assert result.exit_code == 0, result.output
    frame = read_table(out, "prompts")
    assert len(frame) == 11 and (frame["split"] == "train").all()
    dedup = json.loads(Path(f"{out}.manifest.json").read_text())["deduplication"]
    assert [(d["row"], d["kept_row"], d["labels_differ"]) for d in dedup["rows"]] == [(11, 1, True)]
    # the first occurrence's labels are the ones kept
    assert pd.isna(frame.loc[frame["id"] == load_rows(TRAIN_CSV)[0]["id"], "Support Devices"]).all()


@pytest.mark.parametrize(("policy", "uncertain_as"), [("u-zeros", 0), ("u-ones", 1), ("keep", -1)])
def test_uncertainty_policies(tmp_path, policy, uncertain_as):
    out = tmp_path / "p.parquet"
    assert convert(TEST_CSV, out, "--uncertainty", policy).exit_code == 0
    rows = by_path(read_table(out, "prompts"))
    source = {r["path"]: labels_of(r) for r in load_rows()}
    uncertain = [(p, k) for p, labs in source.items() for k, v in labs.items() if v == -1.0 and p in rows]
    assert len(uncertain) == 3
    for path, label in uncertain:
        assert int(rows[path][label]) == uncertain_as
    certain = [(p, k, v) for p, labs in source.items() for k, v in labs.items() if v in (1.0, 0.0) and p in rows]
    assert certain and all(int(rows[p][k]) == int(v) for p, k, v in certain)
    nulls = [(p, k) for p, labs in source.items() for k, v in labs.items() if v is None and p in rows]
    assert nulls and all(pd.isna(rows[p][k]) for p, k in nulls)
    assert read_metadata(out)["extra"]["uncertainty_policy"] == policy
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["uncertain_labels"] == {"count": 3, "written_as": uncertain_as}


def test_keep_duplicates_gives_repeats_distinct_ids(tmp_path):
    out = tmp_path / "p.parquet"
    assert convert(TEST_CSV, out, "--keep-duplicates").exit_code == 0
    frame = read_table(out, "prompts")
    assert len(frame) == 8
    assert frame.loc[5, "prompt_id"] == frame.loc[1, "prompt_id"] + ".2"
    assert frame.loc[5, "image_path"].endswith("fixture-0006-second.jpg")
    dedup = json.loads(Path(f"{out}.manifest.json").read_text())["deduplication"]
    assert (dedup["enabled"], dedup["duplicates"], dedup["dropped"]) == (False, 1, 0)


def test_keep_duplicates_numbers_every_repeat(tmp_path):
    rows = load_rows()
    third = dict(rows[1], path="files/p10/p10000002/s50000002/fixture-third.jpg")
    src = write_rows(tmp_path / "in.csv", [*rows, third])
    out = tmp_path / "p.parquet"
    assert convert(src, out, "--keep-duplicates").exit_code == 0
    ids = read_table(out, "prompts")["prompt_id"].tolist()
    assert [ids[1] + ".2", ids[1] + ".3"] == [ids[5], ids[8]]
    assert len(set(ids)) == 9


def test_blank_lines_do_not_shift_row_numbers(tmp_path):
    lines = TEST_CSV.read_text().splitlines(keepends=True)
    src = tmp_path / "in.csv"
    src.write_text(lines[0] + lines[1] + "\n" + lines[2].replace("'Edema': None", "'Edema': 3.0") + "".join(lines[3:]))
    result = convert(src, tmp_path / "p.parquet")
    assert result.exit_code == 4
    assert result.output.startswith(f"{PREFIX}{src}: row 2 (line 4), column 'chexpert_labels': value(s) outside")
    assert "'Edema': 3.0" in pd.read_csv(src, dtype=str).iloc[1]["chexpert_labels"]  # the original's row 2 too


def test_ids_stay_strings_with_leading_zeros(tmp_path):
    rows = load_rows()
    rows[0]["id"], rows[0]["patientID"] = "0000000150000001", "p00000001"
    rows[1]["id"] = "1e5"
    out = tmp_path / "p.parquet"
    assert convert(write_rows(tmp_path / "in.csv", rows), out).exit_code == 0
    assert pq.read_schema(out).field("id").type == pa.string()
    frame = read_table(out, "prompts")
    assert frame["id"].iloc[:2].tolist() == ["0000000150000001", "1e5"]
    assert frame["patient_id"].iloc[0] == "p00000001"


def test_check_summarises_a_valid_table(tmp_path):
    out = tmp_path / "p.parquet"
    assert convert(TEST_CSV, out).exit_code == 0
    result = run("check", out)
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    assert "7 rows" in result.output and "split test" in result.output and "uncertainty u-zeros" in result.output
    assert "Support_Devices=2" in result.output and "Pleural_Other=0" in result.output


def _prompts_csv(tmp_path: Path, edit) -> Path:
    out = tmp_path / "good.csv"
    assert convert(TEST_CSV, out).exit_code == 0
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    edit(frame)
    bad = tmp_path / "bad_prompts.csv"
    frame.to_csv(bad, index=False)
    return bad


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda f: f.__setitem__("prompt_id", [f["prompt_id"][0]] * len(f)),
            "row 2 (line 3), column 'prompt_id': duplicate",
        ),
        (
            lambda f: f.loc.__setitem__((2, "Edema"), "2"),
            "row 3 (line 4), column 'Edema': 2 is not one of 1/0/-1/blank",
        ),
        (lambda f: f.loc.__setitem__((3, "image_path"), "../outside.jpg"), "row 4 (line 5), column 'image_path': path"),
        (lambda f: f.loc.__setitem__((0, "image_path"), "/abs/x.jpg"), "row 1 (line 2), column 'image_path': absolute"),
        (lambda f: f.drop(columns=["view"], inplace=True), "missing column(s) 'view'"),
    ],
    ids=["duplicate-prompt_id", "label-outside", "path-dotdot", "path-absolute", "missing-column"],
)
def test_check_refuses_bad_prompts_tables(tmp_path, edit, expected):
    bad = _prompts_csv(tmp_path, edit)
    result = run("check", bad)
    assert result.exit_code == 4
    assert any(line.startswith(f"{PREFIX}{bad}: ") and expected in line for line in result.output.splitlines()), (
        result.output
    )


def test_check_refuses_duplicate_prompt_id_in_parquet(tmp_path):
    out = tmp_path / "p.parquet"
    assert convert(TEST_CSV, out).exit_code == 0
    table = pq.read_table(out)
    ids = table.column("prompt_id").to_pylist()
    ids[4] = ids[0]
    bad = tmp_path / "dup.parquet"
    pq.write_table(table.set_column(1, "prompt_id", pa.array(ids)), bad)
    result = run("check", bad)
    assert result.exit_code == 4
    assert f"{PREFIX}{bad}: row 5, column 'prompt_id': duplicate value '{ids[0]}' (first at row 1)" in result.output


def _mutate(rows, index, column, value):
    rows[index][column] = value
    return rows


BAD_ROWS = {
    "label-outside": (
        lambda r: _mutate(r, 1, "chexpert_labels", r[1]["chexpert_labels"].replace("'Edema': None", "'Edema': 2.0")),
        "row 2 (line 3), column 'chexpert_labels': value(s) outside 1.0/0.0/-1.0/None: 'Edema': 2.0",
    ),
    "label-text": (
        lambda r: _mutate(r, 2, "chexpert_labels", r[2]["chexpert_labels"].replace("'Edema': None", "'Edema': 'y'")),
        "row 3 (line 4), column 'chexpert_labels': value(s) outside 1.0/0.0/-1.0/None: 'Edema': 'y'",
    ),
    "label-bool": (
        lambda r: _mutate(r, 2, "chexpert_labels", r[2]["chexpert_labels"].replace("'Edema': None", "'Edema': True")),
        "row 3 (line 4), column 'chexpert_labels': value(s) outside",
    ),
    "malformed-dict": (
        lambda r: _mutate(r, 3, "chexpert_labels", "{'Atelectasis': 1.0,"),
        "row 4 (line 5), column 'chexpert_labels': not a Python dict literal",
    ),
    "not-a-dict": (
        lambda r: _mutate(r, 3, "chexpert_labels", "[1.0, 0.0]"),
        "row 4 (line 5), column 'chexpert_labels': a list, not a dict",
    ),
    "code-not-evaluated": (
        lambda r: _mutate(r, 0, "chexpert_labels", "__import__('os').getcwd()"),
        "row 1 (line 2), column 'chexpert_labels': not a Python dict literal",
    ),
    "empty-labels": (
        lambda r: _mutate(r, 0, "chexpert_labels", ""),
        "row 1 (line 2), column 'chexpert_labels': empty",
    ),
    "unknown-key": (
        lambda r: _mutate(r, 4, "chexpert_labels", r[4]["chexpert_labels"].replace("'Fracture'", "'Fractured'")),
        "row 5 (line 6), column 'chexpert_labels': unknown label key(s) 'Fractured'",
    ),
    "missing-key": (
        lambda r: _mutate(r, 4, "chexpert_labels", r[4]["chexpert_labels"].replace("'Pneumonia': None, ", "")),
        "row 5 (line 6), column 'chexpert_labels': missing label key(s) 'Pneumonia'",
    ),
    "path-dotdot": (
        lambda r: _mutate(r, 6, "path", "files/p10/../p10000007/s50000007/x.jpg"),
        "row 7 (line 8), column 'path': path 'files/p10/../p10000007/s50000007/x.jpg' contains '..'",
    ),
    "path-escapes": (
        lambda r: _mutate(r, 6, "path", "../../etc/passwd"),
        "row 7 (line 8), column 'path': path '../../etc/passwd' escapes its root",
    ),
    "path-absolute": (
        lambda r: _mutate(r, 0, "path", "/mimic/files/p10/p10000001/s50000001/x.jpg"),
        "row 1 (line 2), column 'path': absolute path",
    ),
    "path-empty": (lambda r: _mutate(r, 0, "path", ""), "row 1 (line 2), column 'path': empty image path"),
    "empty-prompt": (
        lambda r: _mutate(r, 1, "annotated_prompt", "   "),
        "row 2 (line 3), column 'annotated_prompt': empty prompt",
    ),
    "after-multiline-row": (  # data row 8 spans lines 9-10, so row 9 starts on line 11
        lambda r: [*r, _mutate([dict(r[0])], 0, "chexpert_labels", "{")[0]],
        "row 9 (line 11), column 'chexpert_labels': not a Python dict literal",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_convert_refuses_bad_rows(tmp_path, case):
    mutate, expected = BAD_ROWS[case]
    src = write_rows(tmp_path / "in.csv", mutate(load_rows()))
    out_dir = tmp_path / "out"
    result = convert(src, out_dir / "p.parquet")
    assert result.exit_code == 4, result.output
    lines = result.output.strip().splitlines()
    assert any(line.startswith(f"{PREFIX}{src}: {expected}") for line in lines), result.output
    assert len(lines) <= 2 and all(line.startswith(f"{PREFIX}{src}: row ") for line in lines), result.output
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_all_problems_reported_at_once(tmp_path):
    out = tmp_path / "p.parquet"
    result = convert(BAD_CSV, out)
    assert result.exit_code == 4
    lines = result.output.strip().splitlines()
    rows = [line.removeprefix(f"{PREFIX}{BAD_CSV}: ").split(" (line")[0] for line in lines]
    assert rows == ["row 2", "row 3", "row 4", "row 5", "row 6", "row 7", "row 7"]
    assert not list(tmp_path.iterdir())


def test_missing_column(tmp_path):
    columns = [c for c in LLAVARAD_COLUMNS if c not in ("chexpert_labels", "patientID")]
    src = write_rows(tmp_path / "in.csv", load_rows(), columns)
    result = convert(src, tmp_path / "p.parquet")
    assert result.exit_code == 4
    assert result.output.strip().splitlines() == [
        f"{PREFIX}{src}: missing column(s) 'chexpert_labels', 'patientID'; an annotation CSV has the 16 columns "
        + ", ".join(LLAVARAD_COLUMNS)
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


def test_ragged_rows_are_named(tmp_path):
    src = tmp_path / "in.csv"
    text = TEST_CSV.read_text().splitlines(keepends=True)
    src.write_text(text[0] + text[1].rstrip("\n") + ",extra\n" + text[2] + "a,b,c\n")
    result = convert(src, tmp_path / "p.parquet")
    assert result.exit_code == 4
    assert result.output.strip().splitlines() == [
        f"{PREFIX}{src}: row 1 (line 2): 17 field(s), the header has 16",
        f"{PREFIX}{src}: row 3 (line 4): 3 field(s), the header has 16",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file"),
        (",".join(LLAVARAD_COLUMNS).encode() + b"\n", "no data rows"),
        (",".join(LLAVARAD_COLUMNS).encode() + b'\n1,"files/p1/unterminated\n', "malformed CSV near line"),
        (",".join(LLAVARAD_COLUMNS).encode() + b"\n\xff\xfe,x\n", "not UTF-8 text"),
    ],
    ids=["empty", "header-only", "truncated", "not-utf8"],
)
def test_unreadable_input(tmp_path, content, expected):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    result = convert(src, tmp_path / "out" / "p.parquet")
    assert result.exit_code == 3
    assert result.output.startswith(f"{PREFIX}{src}: {expected}") and result.output.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_missing_input_and_bad_output_type(tmp_path):
    result = convert(tmp_path / "nope.csv", tmp_path / "p.parquet")
    assert (result.exit_code, result.output) == (3, f"{PREFIX}{tmp_path / 'nope.csv'}: file not found\n")
    result = convert(TEST_CSV, tmp_path / "p.txt")
    assert result.exit_code == 3 and "unsupported output type '.txt'" in result.output
    assert not list(tmp_path.iterdir())


def test_bad_input_leaves_existing_output_untouched(tmp_path):
    out = tmp_path / "p.parquet"
    assert convert(TEST_CSV, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert convert(BAD_CSV, out).exit_code == 4
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_parse_labels_directly():
    full = {label: None for label in CHEXPERT_LABELS}
    assert parse_labels(repr({**full, "Edema": 1, "Fracture": -1.0, "Pneumonia": 0.0})) == (
        {**full, "Edema": 1, "Fracture": -1, "Pneumonia": 0},
        [],
    )
    labels, problems = parse_labels(repr({**full, "Edema": 0.5, "Extra": 1.0}))
    assert problems == ["unknown label key(s) 'Extra'", "value(s) outside 1.0/0.0/-1.0/None: 'Edema': 0.5"]
    assert "Edema" not in labels and "Extra" not in labels


def test_helpers():
    assert prompt_id("abc") == "p" + hashlib.sha256(b"abc").hexdigest()[:16]
    assert study_id_from_path("files/p10/p10000001/s50000001/x.jpg") == "s50000001"
    assert study_id_from_path("images/x.jpg") is None
