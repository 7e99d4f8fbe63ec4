"""Faults over embed runs: stale content, wrong table hashes, failed re-runs, a SIGKILL mid-run, a second process."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from chexbench_common.lock import FolderLock
from chexbench_schema import read_embeddings
from PIL import Image


def _out(tmp_path, run_id="default"):
    return tmp_path / "Results" / "m" / run_id / "embed"


def _args(image_sets, tiny_raddino):
    return ("run", "--model", "m", *image_sets["synthetic"], "--extractor", f"raddino={tiny_raddino}")


def test_an_image_replaced_in_place_is_embedded_again(tmp_path, tiny_raddino, image_sets, embed):
    real = ("run", "--model", "m", *image_sets["real"], "--extractor", f"raddino={tiny_raddino}")
    assert embed(*real).exit_code == 0
    before = read_embeddings(_out(tmp_path) / "real-raddino.parquet").vectors
    target = image_sets["real_root"] / image_sets["real_names"][1]
    with Image.open(target) as img:
        size, mode = img.size, img.mode
    Image.new(mode, size, 7).save(target)  # same name, new content
    again = embed(*real)
    assert again.exit_code == 0 and "up to date" not in again.stderr
    after = read_embeddings(_out(tmp_path) / "real-raddino.parquet").vectors
    assert not np.allclose(after[1], before[1]) and np.allclose(after[[0, 2, 3]], before[[0, 2, 3]], atol=1e-6)
    assert "up to date" in embed(*real).stderr  # and unchanged content skips


def test_images_table_hashes_are_checked(tmp_path, tiny_raddino, image_sets, make, embed):
    table = pq.read_table(image_sets["images"])
    frame = table.to_pandas()
    frame.loc[2, "sha256"] = "0" * 64
    frame.loc[3, "sha256"] = "0" * 64
    bad = tmp_path / "zeros.parquet"
    pq.write_table(
        table.from_pandas(pd.DataFrame(frame), preserve_index=False).replace_schema_metadata(table.schema.metadata), bad
    )
    result = embed(
        "run",
        "--model",
        "m",
        "--images",
        bad,
        "--images-root",
        image_sets["synth_root"],
        "--extractor",
        f"raddino={tiny_raddino}",
    )
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "zeros.parquet: row 3 (image_id" in lines[0] and "zeros.parquet: row 4" in lines[1]
    assert "the table says 000000000000..." in lines[0]
    assert not (tmp_path / "Results").exists()


def test_failed_rerun_over_a_finished_run_leaves_nothing_valid_looking(tmp_path, tiny_raddino, image_sets, embed):
    assert embed(*_args(image_sets, tiny_raddino)).exit_code == 0
    (image_sets["synth_root"] / image_sets["synth_names"][0]).write_bytes(b"not an image any more")
    result = embed(*_args(image_sets, tiny_raddino))
    assert result.exit_code == 3
    manifest = json.loads((_out(tmp_path) / "manifest.json").read_text())
    assert manifest["status"] == "failed" and not (_out(tmp_path) / "_SUCCESS").exists()


@pytest.mark.system
def test_sigkill_mid_run_then_rerun_completes(tmp_path, tiny_raddino, image_sets):
    exe = Path(sys.executable).with_name("chexbench-embed")
    args = [str(exe), *map(str, _args(image_sets, tiny_raddino)), "--results", str(tmp_path / "Results")]
    args += ["--num-workers", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CHEXBENCH_FAULT": "embed:started"}
    killed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    manifest = json.loads((_out(tmp_path) / "manifest.json").read_text())
    assert manifest["status"] == "running" and not (_out(tmp_path) / "_SUCCESS").exists()
    again = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (_out(tmp_path) / "_SUCCESS").exists()
    assert len(read_embeddings(_out(tmp_path) / "synthetic-raddino.parquet").frame) == len(image_sets["synth_names"])


def test_second_process_on_the_folder_is_refused(tmp_path, tiny_raddino, image_sets, embed):
    with FolderLock(_out(tmp_path)):
        busy = embed(*_args(image_sets, tiny_raddino))
    assert busy.exit_code == 7 and "is in use by process" in busy.stderr
    assert not (_out(tmp_path) / "manifest.json").exists()
