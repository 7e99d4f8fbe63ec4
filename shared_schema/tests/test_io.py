import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from chexbench_schema import read_embeddings, read_metadata, read_table, write_embeddings, write_table
from chexbench_schema.errors import BadInputError, SchemaError


def test_parquet_round_trip_keeps_values_types_and_metadata(tmp_path, prompts_frame):
    path = write_table(prompts_frame, tmp_path / "p.parquet", "prompts", producer="test 1", run_id="r1")
    back = read_table(path, "prompts")
    assert back["prompt"].tolist() == prompts_frame["prompt"].tolist()
    assert str(back["Pleural Effusion"].dtype) == "Int8"
    assert back["Pleural Effusion"].tolist() == [1, 0, 0]
    assert back["Edema"].isna().all()
    assert pq.read_schema(path).field("Edema").type == "int8"
    meta = read_metadata(path)
    assert (meta["table"], meta["version"], meta["producer"], meta["run_id"]) == ("prompts", "1.0.0", "test 1", "r1")


def test_csv_is_read_and_validated_like_parquet(tmp_path, prompts_frame):
    csv = tmp_path / "p.csv"
    prompts_frame.assign(id=["0012", "0034", "0056"]).to_csv(csv, index=False)
    back = read_table(csv, "prompts")
    assert back["id"].tolist() == ["0012", "0034", "0056"]  # strings keep leading zeros
    assert back["Pleural Effusion"].tolist() == [1, 0, 0]


def test_reader_reports_every_problem_with_row_and_column(tmp_path, prompts_frame):
    bad = prompts_frame.astype(object)
    bad.loc[0, "Edema"] = 2
    bad.loc[1, "image_path"] = "../../etc/passwd"
    bad.loc[2, "image_path"] = "/abs/img.png"
    bad.loc[2, "prompt_id"] = bad.loc[0, "prompt_id"]
    bad.loc[1, "prompt"] = ""
    csv = tmp_path / "bad.csv"
    bad.to_csv(csv, index=False)
    with pytest.raises(SchemaError) as info:
        read_table(csv, "prompts")
    text = "\n".join(info.value.lines())
    assert "row 1 (line 2), column 'Edema': 2 is not one of 1/0/-1/blank" in text
    assert "row 2 (line 3), column 'image_path': path '../../etc/passwd' escapes its root" in text
    assert "row 3 (line 4), column 'image_path': absolute path '/abs/img.png'" in text
    assert "row 3 (line 4), column 'prompt_id': duplicate value" in text and "first at row 1" in text
    assert "row 2 (line 3), column 'prompt': empty value" in text
    assert all(line.startswith(str(csv)) for line in info.value.lines())
    assert info.value.exit_code == 4


def test_missing_column_is_named(tmp_path, prompts_frame):
    csv = tmp_path / "p.csv"
    prompts_frame.drop(columns=["Edema", "view"]).to_csv(csv, index=False)
    with pytest.raises(SchemaError, match=r"missing column\(s\) 'view', 'Edema'"):
        read_table(csv, "prompts")


def test_fractional_and_text_labels_are_refused(tmp_path, prompts_frame):
    bad = prompts_frame.astype(object)
    bad.loc[0, "Fracture"] = "0.5"
    bad.loc[1, "Fracture"] = "yes"
    csv = tmp_path / "p.csv"
    bad.to_csv(csv, index=False)
    with pytest.raises(SchemaError) as info:
        read_table(csv, "prompts")
    assert any("row 1 (line 2), column 'Fracture': '0.5' is not an int8 integer" in line for line in info.value.lines())
    assert any("row 2 (line 3), column 'Fracture': 'yes' is not a number" in line for line in info.value.lines())


def test_writer_refuses_invalid_frames_and_leaves_no_file(tmp_path, prompts_frame):
    bad = prompts_frame.astype(object)
    bad.loc[0, "Cardiomegaly"] = 7
    with pytest.raises(SchemaError, match="not written"):
        write_table(bad, tmp_path / "out.parquet", "prompts", producer="t")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path, prompts_frame, monkeypatch):
    target = write_table(prompts_frame, tmp_path / "p.parquet", "prompts", producer="t")
    before = target.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", explode)
    with pytest.raises(OSError):
        write_table(prompts_frame.iloc[:1], target, "prompts", producer="t")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]


def test_other_major_version_and_wrong_table_are_refused(tmp_path, prompts_frame):
    path = write_table(prompts_frame, tmp_path / "p.parquet", "prompts", producer="t")
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"chexbench"])
    for change, message in (
        ({"version": "2.0.0"}, "version 2.0.0 is not readable"),
        ({"table": "images"}, "holds the 'images' table, not the 'prompts' table"),
    ):
        pq.write_table(table.replace_schema_metadata({b"chexbench": json.dumps({**meta, **change})}), path)
        with pytest.raises(SchemaError, match=message):
            read_table(path, "prompts")
    pq.write_table(table.replace_schema_metadata({b"chexbench": json.dumps({**meta, "version": "1.7.0"})}), path)
    assert len(read_table(path, "prompts")) == 3  # a newer minor of the same major is readable


def test_embeddings_round_trip_exact_float32(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5, 7)).astype(np.float32)
    frame = pd.DataFrame({"image_id": list("abcde"), "source": "real", "extractor": "inception"})
    path = write_embeddings(
        frame,
        vectors,
        tmp_path / "e.parquet",
        producer="t",
        extractor="inception",
        weights_sha256="a" * 64,
        preprocessing={"resize": 299},
    )
    emb = read_embeddings(path)
    np.testing.assert_array_equal(emb.vectors, vectors)
    assert emb.frame["image_id"].tolist() == list("abcde")
    assert emb.metadata["extra"]["preprocessing"] == {"resize": 299}
    assert emb.metadata["extra"]["dim"] == 7
    assert pq.read_schema(path).field("vector").type.list_size == 7


def test_embeddings_with_nan_are_refused_on_read(tmp_path):
    frame = pd.DataFrame({"image_id": ["a", "b"], "source": "synthetic", "extractor": "x"})
    vectors = np.ones((2, 3), np.float32)
    path = write_embeddings(
        frame,
        vectors,
        tmp_path / "e.parquet",
        producer="t",
        extractor="x",
        weights_sha256="0" * 64,
        preprocessing="none",
    )
    table = pq.read_table(path)
    vectors[1, 2] = np.nan
    import pyarrow as pa

    col = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 3)
    pq.write_table(table.set_column(3, "vector", col), path)
    with pytest.raises(SchemaError, match="row 2, column 'vector': vector has NaN or infinite values"):
        read_embeddings(path)


def test_embeddings_need_metadata_and_cannot_be_csv(tmp_path):
    frame = pd.DataFrame({"image_id": ["a"], "source": "real", "extractor": "x", "vector": [np.zeros(2, np.float32)]})
    with pytest.raises(SchemaError, match="metadata lacks 'weights_sha256'"):
        write_table(frame, tmp_path / "e.parquet", "embeddings", producer="t", extra={"extractor": "x"})
    with pytest.raises(BadInputError, match="must be Parquet"):
        (tmp_path / "e.csv").write_text("image_id,source,extractor,vector\n")
        read_table(tmp_path / "e.csv", "embeddings")


def test_unreadable_and_missing_files_give_one_line(tmp_path):
    with pytest.raises(BadInputError, match="file not found"):
        read_table(tmp_path / "nope.parquet", "prompts")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(BadInputError, match="cannot be read as parquet") as info:
        read_table(broken, "prompts")
    assert "\n" not in str(info.value)


def test_non_finite_vectors_only_where_the_metadata_allows_them(tmp_path):
    vectors = np.ones((3, 4), np.float32)
    vectors[1, 2] = np.nan
    frame = pd.DataFrame({"image_id": ["a", "b", "c"], "source": "real", "extractor": "radiomics"})
    common = {"producer": "t", "extractor": "radiomics", "weights_sha256": "0" * 64, "preprocessing": "r"}
    with pytest.raises(SchemaError, match="row 2, column 'vector': vector has NaN"):
        write_embeddings(frame, vectors, tmp_path / "refused.parquet", **common)
    path = write_embeddings(frame, vectors, tmp_path / "r.parquet", **common, extra={"non_finite": "allowed"})
    back = read_embeddings(path)
    assert np.isnan(back.vectors[1, 2]) and np.isfinite(np.delete(back.vectors.ravel(), 6)).all()
    assert back.metadata["version"] == "1.1.0"
