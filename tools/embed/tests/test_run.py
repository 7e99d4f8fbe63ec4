"""`chexbench-embed run`: outputs, batch-size independence, the real-set cache, skipping, DICOM input."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from chexbench_common.hashing import sha256_tree
from chexbench_common.imageio import load_grey
from chexbench_schema import read_embeddings
from PIL import Image

# A real adult chest CR from the pydicom-data package (installed --no-deps by `make setup`).
DICOM = Path(importlib.util.find_spec("data_store").submodule_search_locations[0]) / "data" / "RG1_UNCR.dcm"


def _manifest(tmp_path: Path, run_id: str = "default") -> dict:
    return json.loads((tmp_path / "Results" / "m" / run_id / "embed" / "manifest.json").read_text())


def _raddino(folder: Path, *extra: str) -> list:
    return ["--extractor", f"raddino={folder}", "--num-workers", "0", *extra]


def test_one_table_per_source_with_ids_in_table_order(tmp_path, tiny_raddino, image_sets, embed):
    result = embed("run", "--model", "m", *image_sets["real"], *image_sets["synthetic"], *_raddino(tiny_raddino))
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "Results" / "m" / "default" / "embed"
    assert result.stdout.split() == [str(out / "real-raddino.parquet"), str(out / "synthetic-raddino.parquet")]
    real, synth = (read_embeddings(p) for p in result.stdout.split())
    assert list(real.frame["image_id"]) == list(real.frame["prompt_id"]) == [f"p{i:016x}" for i in range(4)]
    assert list(synth.frame["image_id"]) == [f"p{i:016x}-0" for i in range(4)]
    assert set(real.frame["source"]) == {"real"} and set(synth.frame["extractor"]) == {"raddino"}
    extra = real.metadata["extra"]
    assert extra["weights_sha256"] == sha256_tree(tiny_raddino) and extra["dim"] == 32 == real.vectors.shape[1]
    assert extra["preprocessing"]["resize"].startswith("shortest edge to 56") and extra["compute_dtype"] == "fp32"
    assert np.isfinite(real.vectors).all() and len(np.unique(real.vectors.round(5), axis=0)) == 4
    manifest = _manifest(tmp_path)
    assert manifest["status"] == "success" and (out / "_SUCCESS").exists()
    assert manifest["weights"] == {"raddino": sha256_tree(tiny_raddino)}


def test_vectors_do_not_depend_on_batch_size_or_workers(tiny_raddino, image_sets, embed):
    sets = [*image_sets["real"], *image_sets["synthetic"], "--no-cache"]
    tables = []
    for run_id, batch, workers in (("b1", "1", "0"), ("b3", "3", "2")):
        args = ("--run-id", run_id, "--batch-size", batch, "--num-workers", workers)
        result = embed("run", "--model", "m", *sets, *_raddino(tiny_raddino), *args)
        assert result.exit_code == 0, result.stderr
        tables.append([read_embeddings(p).vectors for p in result.stdout.split()])
    for one, three in zip(*tables, strict=True):
        np.testing.assert_allclose(one, three, rtol=1e-5, atol=1e-6)


def test_second_run_on_the_same_real_set_extracts_nothing(tmp_path, tiny_raddino, image_sets, embed, monkeypatch):
    args = ("run", "--model", "m", *image_sets["real"], *_raddino(tiny_raddino))
    first = embed(*args, "--run-id", "a")
    with monkeypatch.context() as patch:  # unchanged files are not even read again: their hashes are remembered
        patch.setattr("chexbench_embed.run.sha256_file", lambda path: pytest.fail(f"{path} was hashed again"))
        second = embed(*args, "--run-id", "b")
    assert first.exit_code == second.exit_code == 0, first.stderr + second.stderr
    assert _manifest(tmp_path, "a")["counts"]["real"]["raddino"] == {"rows": 4, "extracted": 4, "cached": 0}
    assert _manifest(tmp_path, "b")["counts"]["real"]["raddino"] == {"rows": 4, "extracted": 0, "cached": 4}
    before = read_embeddings(first.stdout.strip()).vectors
    np.testing.assert_array_equal(before, read_embeddings(second.stdout.strip()).vectors)
    assert list((tmp_path / "chexbench-cache" / "embeddings").glob("*/pack-*.npz"))  # the default location

    # Content-addressed: a changed file is re-extracted, the others still come from the cache.
    Image.fromarray(np.full((64, 48), 200, np.uint8)).save(image_sets["real_root"] / image_sets["real_names"][0])
    third = embed(*args, "--run-id", "c")
    assert third.exit_code == 0, third.stderr
    assert _manifest(tmp_path, "c")["counts"]["real"]["raddino"] == {"rows": 4, "extracted": 1, "cached": 3}
    changed = read_embeddings(third.stdout.strip()).vectors
    assert not np.allclose(changed[0], before[0]) and np.array_equal(changed[1:], before[1:])


def test_a_finished_run_is_skipped_unless_forced(tmp_path, tiny_raddino, image_sets, embed):
    args = ("run", "--model", "m", *image_sets["real"], *_raddino(tiny_raddino))
    assert embed(*args).exit_code == 0
    table = tmp_path / "Results" / "m" / "default" / "embed" / "real-raddino.parquet"
    stamp = table.stat().st_mtime_ns
    again = embed(*args)
    assert again.exit_code == 0 and "up to date" in again.stderr and table.stat().st_mtime_ns == stamp
    forced = embed(*args, "--force")
    assert forced.exit_code == 0 and "up to date" not in forced.stderr and table.stat().st_mtime_ns != stamp


def test_dicom_input_embeds_like_the_same_pixels_as_a_16_bit_png(tmp_path, tiny_raddino, make, embed):
    root = tmp_path / "dicom"
    root.mkdir()
    shutil.copy(DICOM, root / "cxr.dcm")
    Image.fromarray(np.round(load_grey(DICOM) * 65535).astype(np.uint16)).save(root / "cxr.png")
    table = make.prompts_table(tmp_path / "dicom.parquet", ["cxr.dcm", "cxr.png"])
    result = embed("run", "--model", "m", "--prompts", table, "--real-root", root, *_raddino(tiny_raddino))
    assert result.exit_code == 0, result.stderr
    dicom, png = read_embeddings(result.stdout.strip()).vectors
    np.testing.assert_allclose(dicom, png, rtol=1e-4, atol=1e-4)
