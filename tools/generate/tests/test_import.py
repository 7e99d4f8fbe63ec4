"""`import`: both CSV conventions of the original and a plain folder + CSV; matching, decoding, reporting."""

import json

import numpy as np
import pandas as pd
from chexbench_common.hashing import sha256_file
from chexbench_schema import read_metadata, read_table
from generate_helpers import PROMPT_TEXTS, prompt_id
from PIL import Image


def _images(folder, names, size=(40, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)).save(folder / name)
    return folder


def _import(cli, csv, prompts5, results, *extra):
    return cli("import", "--csv", csv, "--prompts", prompts5, "--model", "LLM-CXR", "--results", results, *extra)


def test_prompt_info_convention_with_whitespace_variants(prompts5, tmp_path, cli):
    folder = _images(tmp_path / "gen", [f"Prompt_{i}.png" for i in range(4)])
    # the second row differs from its prompt only in whitespace; the third is a second image of the first prompt
    texts = [
        PROMPT_TEXTS[0],
        "  right lower lobe  pneumonia\twith small pleural effusion ",
        PROMPT_TEXTS[0],
        PROMPT_TEXTS[3],
    ]
    pd.DataFrame({"prompt": texts, "img_savename": [f"Prompt_{i}.png" for i in range(4)]}).to_csv(
        folder / "prompt_INFO.csv", index=False
    )
    result = _import(cli, folder / "prompt_INFO.csv", prompts5, tmp_path / "R")
    assert result.exit_code == 0, result.output
    gen = tmp_path / "R" / "LLM-CXR" / "default" / "generate"
    table = read_table(gen / "images.parquet", "images")
    ids = [prompt_id(PROMPT_TEXTS[i]) for i in (0, 1, 0, 3)]
    assert list(table["prompt_id"]) == ids and list(table["sample_index"]) == [0, 0, 1, 0]
    assert list(table["image_id"]) == [f"{p}-{k}" for p, k in zip(ids, [0, 0, 1, 0], strict=True)]
    assert set(table["width"]) == {40} and set(table["height"]) == {32} and table["seed"].isna().all()
    for row, name in zip(table.itertuples(), [f"Prompt_{i}.png" for i in range(4)], strict=True):
        assert sha256_file(gen / "images" / row.path) == row.sha256 == sha256_file(folder / name)
    assert read_metadata(gen / "images.parquet")["extra"]["images_root"] == "images"
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["counts"] == {"rows": 4, "imported": 4, "unmatched": 0, "prompts": 3}
    assert manifest["params"]["file_col"] == "img_savename" and (gen / "_SUCCESS").exists()


def test_generations_with_metadata_convention_uses_synthetic_filename(prompts5, tmp_path, cli):
    folder = _images(tmp_path / "out" / "extra", ["SyntheticImg_11.png", "SyntheticImg_12.png"])
    pd.DataFrame(
        {
            "id": ["11", "12"],
            "path": ["files/p10/x.jpg", "files/p11/y.jpg"],  # the real images: not used
            "annotated_prompt": [PROMPT_TEXTS[2], PROMPT_TEXTS[4]],
            "synthetic_filename": ["SyntheticImg_11.png", "SyntheticImg_12.png"],
        }
    ).to_csv(folder / "generations_with_metadata.csv", index=False)
    result = _import(cli, folder / "generations_with_metadata.csv", prompts5, tmp_path / "R")
    assert result.exit_code == 0, result.output
    table = read_table(tmp_path / "R" / "LLM-CXR" / "default" / "generate" / "images.parquet", "images")
    assert list(table["prompt_id"]) == [prompt_id(PROMPT_TEXTS[2]), prompt_id(PROMPT_TEXTS[4])]


def test_plain_csv_with_prompt_ids_sample_indexes_and_an_images_dir(prompts5, tmp_path, cli):
    images = _images(tmp_path / "pngs", ["a.png", "b.png"])
    csv = tmp_path / "list.csv"
    pid = prompt_id(PROMPT_TEXTS[1])
    pd.DataFrame({"prompt_id": [pid, pid], "filename": ["a.png", "b.png"], "sample_index": [3, 7]}).to_csv(
        csv, index=False
    )
    result = _import(cli, csv, prompts5, tmp_path / "R", "--images-dir", images)
    assert result.exit_code == 0, result.output
    table = read_table(tmp_path / "R" / "LLM-CXR" / "default" / "generate" / "images.parquet", "images")
    assert list(table["image_id"]) == [f"{pid}-3", f"{pid}-7"]


def test_unmatched_rows_are_reported_or_listed(prompts5, tmp_path, cli):
    folder = _images(tmp_path / "gen", ["0.png", "1.png", "2.png"])
    csv = folder / "prompt_INFO.csv"
    pd.DataFrame(
        {
            "prompt": [PROMPT_TEXTS[0], "no such prompt", "Cardiomegaly with mild pulmonary edema"],
            "img_savename": ["0.png", "1.png", "2.png"],
        }
    ).to_csv(csv, index=False)
    refused = _import(cli, csv, prompts5, tmp_path / "R")
    assert refused.exit_code == 3
    lines = refused.output.strip().splitlines()
    assert "row 2 (line 3):" in lines[0] and "'no such prompt'" in lines[0]
    assert "row 3 (line 4):" in lines[1]  # case differs: not a whitespace variant
    assert "--allow-unmatched" in lines[2]
    assert not (tmp_path / "R").exists()

    allowed = _import(cli, csv, prompts5, tmp_path / "R", "--allow-unmatched")
    assert allowed.exit_code == 0, allowed.output
    gen = tmp_path / "R" / "LLM-CXR" / "default" / "generate"
    assert len(read_table(gen / "images.parquet", "images")) == 1
    assert list(pd.read_csv(gen / "unmatched.csv")["img_savename"]) == ["1.png", "2.png"]
    assert json.loads((gen / "manifest.json").read_text())["counts"]["unmatched"] == 2


def test_every_file_must_decode(prompts5, tmp_path, cli):
    folder = _images(tmp_path / "gen", ["0.png", "1.png"])
    (folder / "1.png").write_bytes((folder / "1.png").read_bytes()[:60])  # truncated
    csv = folder / "prompt_INFO.csv"
    pd.DataFrame({"prompt": PROMPT_TEXTS[:3], "img_savename": ["0.png", "1.png", "2.png"]}).to_csv(csv, index=False)
    result = _import(cli, csv, prompts5, tmp_path / "R")
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and "1.png: cannot decode" in lines[0] and "2.png: image file not found" in lines[1]
    assert not (tmp_path / "R").exists()


def test_a_decompression_bomb_and_an_undecodable_dicom_are_one_line_each(prompts5, tmp_path, cli):
    from chexbench_common.testing import write_decompression_bomb_png, write_undecodable_dicom

    folder = _images(tmp_path / "gen", ["0.png"])
    write_decompression_bomb_png(folder / "huge.png")
    write_undecodable_dicom(folder / "scan.dcm")
    csv = folder / "prompt_INFO.csv"
    files = ["0.png", "huge.png", "scan.dcm"]
    pd.DataFrame({"prompt": PROMPT_TEXTS[:3], "img_savename": files}).to_csv(csv, index=False)
    result = _import(cli, csv, prompts5, tmp_path / "R")
    assert result.exit_code == 3 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert "huge.png: refused as a possible decompression bomb" in lines[0]
    assert "scan.dcm: cannot decode the DICOM pixel data, JPEG 2000" in lines[1]
    assert not (tmp_path / "R").exists()


def test_many_bad_files_are_listed_up_to_the_limit_then_counted(prompts5, tmp_path, cli):
    from chexbench_common.errors import MAX_REPORTED_PROBLEMS

    names = [f"{i}.png" for i in range(MAX_REPORTED_PROBLEMS + 3)]
    folder = tmp_path / "gen"
    folder.mkdir()
    for name in names:
        (folder / name).write_text("not an image")
    csv = folder / "list.csv"
    pd.DataFrame({"prompt": PROMPT_TEXTS[0], "file": names, "sample_index": range(len(names))}).to_csv(csv, index=False)
    result = _import(cli, csv, prompts5, tmp_path / "R")
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == MAX_REPORTED_PROBLEMS + 1 and lines[-1].endswith("... and 3 more problem(s)")
    assert all("cannot decode image" in line for line in lines[:-1])


def test_failed_reimport_over_a_finished_import_leaves_nothing_valid_looking(prompts5, tmp_path, cli):
    folder = _images(tmp_path / "gen", ["a.png"])
    csv = folder / "list.csv"
    pd.DataFrame({"prompt": [PROMPT_TEXTS[0]], "file": ["a.png"]}).to_csv(csv, index=False)
    assert _import(cli, csv, prompts5, tmp_path / "R").exit_code == 0
    gen = tmp_path / "R" / "LLM-CXR" / "default" / "generate"
    pd.DataFrame({"prompt": [PROMPT_TEXTS[0]], "file": ["missing.png"]}).to_csv(csv, index=False)
    failed = _import(cli, csv, prompts5, tmp_path / "R")
    assert failed.exit_code == 3 and "missing.png" in failed.output
    assert json.loads((gen / "manifest.json").read_text())["status"] == "failed"
    assert not (gen / "_SUCCESS").exists()


def test_a_source_image_replaced_in_place_is_imported_again(prompts5, tmp_path, cli):
    folder = _images(tmp_path / "gen", ["a.png"])
    csv = folder / "list.csv"
    pd.DataFrame({"prompt": [PROMPT_TEXTS[0]], "file": ["a.png"]}).to_csv(csv, index=False)
    assert _import(cli, csv, prompts5, tmp_path / "R").exit_code == 0
    gen = tmp_path / "R" / "LLM-CXR" / "default" / "generate"
    before = read_table(gen / "images.parquet", "images")["sha256"].iloc[0]
    Image.new("L", (40, 32), 9).save(folder / "a.png")
    assert _import(cli, csv, prompts5, tmp_path / "R").exit_code == 0
    after = read_table(gen / "images.parquet", "images")
    assert after["sha256"].iloc[0] != before and after["sha256"].iloc[0] == sha256_file(folder / "a.png")
