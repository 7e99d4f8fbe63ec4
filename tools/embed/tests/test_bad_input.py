"""Bad input: one clear line per problem, a distinct exit code, and no partial output."""

from __future__ import annotations

import json
import os

import pandas as pd
from PIL import Image


def _real(table, root, tiny_raddino, *extra) -> tuple:
    model = ("--extractor", f"raddino={tiny_raddino}", "--num-workers", "0")
    return ("run", "--model", "m", "--prompts", table, "--real-root", root, *model, *extra)


def test_truncated_image_names_file_and_row_and_leaves_no_output(tmp_path, tiny_raddino, image_sets, embed):
    args = _real(image_sets["prompts"], image_sets["real_root"], tiny_raddino)
    assert embed(*args).exit_code == 0  # a finished run whose outputs must not survive a failed redo
    broken = image_sets["real_root"] / image_sets["real_names"][2]
    broken.write_bytes(broken.read_bytes()[:300])
    for workers in ("0", "2"):
        result = embed(*args, "--force", "--num-workers", workers)
        assert result.exit_code == 3, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "prompts.parquet row 3 (prompt_id p0000000000000002)" in lines[0]
        assert str(broken) in lines[0] and "cannot decode image" in lines[0]
        out = tmp_path / "Results" / "m" / "default" / "embed"
        assert not list(out.glob("*.parquet")) and not (out / "_SUCCESS").exists()
        assert json.loads((out / "manifest.json").read_text())["status"] == "failed"


def test_image_file_missing_is_reported_with_its_row(tiny_raddino, image_sets, embed):
    (image_sets["real_root"] / image_sets["real_names"][1]).unlink()
    result = embed(*_real(image_sets["prompts"], image_sets["real_root"], tiny_raddino))
    assert result.exit_code == 3 and "prompts.parquet row 2" in result.stderr and "cannot read" in result.stderr


def test_symlink_leaving_the_root_is_refused(tmp_path, tiny_raddino, image_sets, make, embed):
    outside = tmp_path / "outside.png"
    Image.new("L", (60, 60), 128).save(outside)
    os.symlink(outside, image_sets["real_root"] / "link.png")
    table = make.prompts_table(tmp_path / "escape.parquet", ["img0.png", "link.png"])
    result = embed(*_real(table, image_sets["real_root"], tiny_raddino))
    assert result.exit_code == 3
    assert "escape.parquet row 2" in result.stderr and "outside its root" in result.stderr
    assert not (tmp_path / "Results").exists()


def test_dotdot_path_is_a_contract_error(tmp_path, tiny_raddino, image_sets, embed):
    csv = tmp_path / "dotdot.csv"  # the table writer refuses such a path, so hand-edit a CSV as a user might
    frame = pd.read_parquet(image_sets["prompts"])
    frame.loc[0, "image_path"] = "../synth/img0.png"
    frame.to_csv(csv, index=False)
    result = embed(*_real(csv, image_sets["real_root"], tiny_raddino))
    assert result.exit_code == 4 and "row 1 (line 2), column 'image_path'" in result.stderr and "'..'" in result.stderr
    assert not (tmp_path / "Results").exists()


def test_prompts_without_image_path_are_all_listed(tmp_path, tiny_raddino, image_sets, make, embed):
    names = image_sets["real_names"]
    table = make.prompts_table(tmp_path / "partial.parquet", [names[0], None, names[2], None])
    result = embed(*_real(table, image_sets["real_root"], tiny_raddino))
    assert result.exit_code == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert "row 2 (prompt_id p0000000000000001): no image_path" in lines[0] and "row 4" in lines[1]


def test_fp16_on_cpu_and_unpaired_options_are_refused(tiny_raddino, image_sets, embed):
    args = _real(image_sets["prompts"], image_sets["real_root"], tiny_raddino, "--device", "cpu")
    fp16 = embed(*args, "--precision", "fp16")
    assert fp16.exit_code == 3 and "fp16 needs a GPU" in fp16.stderr
    unpaired = embed("run", "--model", "m", "--prompts", image_sets["prompts"], "--extractor", "inception")
    assert unpaired.exit_code == 2 and "--prompts and --real-root go together" in unpaired.stderr


def test_every_undecodable_image_is_named_at_once(tmp_path, tiny_raddino, image_sets, make, embed):
    """A truncated PNG, a decompression bomb and a DICOM whose pixel data no decoder reads: one line each with its
    row and file (not only the first), exit 3, no traceback, no table."""
    from chexbench_common.testing import write_decompression_bomb_png, write_undecodable_dicom

    root, names = image_sets["real_root"], image_sets["real_names"]
    cut = root / names[1]
    cut.write_bytes(cut.read_bytes()[:300])
    write_decompression_bomb_png(root / "bomb.png")
    write_undecodable_dicom(root / "undecodable.dcm")
    table = make.prompts_table(tmp_path / "bad.parquet", [names[0], names[1], "bomb.png", names[2], "undecodable.dcm"])
    for workers in ("0", "2"):
        result = embed(*_real(table, root, tiny_raddino, "--force", "--num-workers", workers, "--batch-size", "2"))
        assert result.exit_code == 3, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 3 and "Traceback" not in result.stderr, result.stderr
        assert "bad.parquet row 2 (prompt_id p0000000000000001)" in lines[0] and str(cut) in lines[0]
        assert "bad.parquet row 3" in lines[1] and "bomb.png: refused as a possible decompression bomb" in lines[1]
        assert "bad.parquet row 5" in lines[2] and "undecodable.dcm: cannot decode the DICOM pixel data" in lines[2]
        assert not list((tmp_path / "Results" / "m" / "default" / "embed").glob("*.parquet"))


def test_a_truncated_model_safetensors_is_one_line_naming_it(tmp_path, tiny_raddino, image_sets, embed):
    import shutil

    damaged = tmp_path / "damaged-raddino"
    shutil.copytree(tiny_raddino, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = embed(*_real(image_sets["prompts"], image_sets["real_root"], damaged))
    assert result.exit_code == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"extractor raddino: {weights} is damaged (truncated" in lines[0]
    assert not (tmp_path / "Results" / "m" / "default" / "embed" / "_SUCCESS").exists()
