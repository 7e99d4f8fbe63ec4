"""Resume: a killed run loses at most its batch in flight; re-runs skip verified images only."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from chexbench_common.hashing import sha256_file
from chexbench_common.imageio import load_grey
from chexbench_schema import read_table
from generate_helpers import make_prompts, numbered_prompts, read_manifest, sana_args

N = 24


def _ledger_lines(ledger: Path) -> int:
    return len(ledger.read_text().splitlines()) if ledger.exists() else 0


@pytest.mark.system
def test_kill_mid_run_then_resume_gives_exactly_the_full_set(tiny, tmp_path, cli):
    prompts = make_prompts(tmp_path / "prompts.parquet", numbered_prompts(N))
    args = [str(a) for a in sana_args(tiny, prompts, tmp_path, "killed", "--batch-size", 2)]
    gen = tmp_path / "sana" / "killed" / "generate"
    ledger = gen / "parts" / "shard-0-of-1" / "ledger.jsonl"
    exe = Path(sys.executable).with_name("chexbench-generate")
    # SIGKILL at a fixed point (after the 3rd finished batch), not raced against the clock
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CHEXBENCH_FAULT": "generate:batch@3"}
    killed = subprocess.run([str(exe), *args], capture_output=True, env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _ledger_lines(ledger) == 6
    assert not (gen / "images.parquet").exists() and not (gen / "_SUCCESS").exists()
    part = json.loads((ledger.parent / "manifest.json").read_text())
    assert part["status"] == "running" and not (ledger.parent / "_SUCCESS").exists()
    for png in (gen / "images").glob("*.png"):  # whatever is there decodes: never a truncated PNG
        load_grey(png)

    result = cli(*args)
    assert result.exit_code == 0, result.output
    table = read_table(gen / "images.parquet", "images")
    assert sorted(table["image_id"]) == sorted(f"{p}-0" for p in table["prompt_id"]) and len(table) == N
    assert table["image_id"].is_unique and table["prompt_id"].nunique() == N
    assert sorted(p.name for p in (gen / "images").iterdir()) == sorted(table["path"])  # no temporaries left over
    counts = read_manifest(tmp_path, "sana", "killed")["counts"]
    assert counts["reused"] == 6 and counts["generated"] == N - 6

    reference = cli(*sana_args(tiny, prompts, tmp_path, "uninterrupted", "--batch-size", 2))
    assert reference.exit_code == 0
    ref = read_table(tmp_path / "sana" / "uninterrupted" / "generate" / "images.parquet", "images")
    assert dict(zip(ref["image_id"], ref["sha256"], strict=True)) == dict(
        zip(table["image_id"], table["sha256"], strict=True)
    )


def test_resume_regenerates_damaged_images_and_reuses_intact_ones(tiny, tmp_path, cli):
    prompts = make_prompts(tmp_path / "prompts.parquet", numbered_prompts(4))
    args = sana_args(tiny, prompts, tmp_path, "r", "--batch-size", 2)
    assert cli(*args, "--limit", 3).exit_code == 0
    gen = tmp_path / "sana" / "r" / "generate"
    first = read_table(gen / "images.parquet", "images").set_index("image_id")
    damaged = gen / "images" / first["path"].iloc[0]
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated: exists, but neither sha256 nor decode holds
    (gen / "images" / first["path"].iloc[1]).unlink()

    result = cli(*args)  # the full 4 prompts
    assert result.exit_code == 0, result.output
    assert "3 generated" in result.output and "1 already there" in result.output
    table = read_table(gen / "images.parquet", "images").set_index("image_id")
    assert len(table) == 4 and (table.loc[first.index, "sha256"] == first["sha256"]).all()
    assert sha256_file(damaged) == first["sha256"].iloc[0]


def test_repeated_run_is_a_no_op_and_other_settings_are_refused(tiny, prompts5, tmp_path, cli):
    args = sana_args(tiny, prompts5, tmp_path, "r", "--limit", 2)
    assert cli(*args).exit_code == 0
    manifest = tmp_path / "sana" / "r" / "generate" / "manifest.json"
    before = json.loads(manifest.read_text())["ended"], manifest.stat().st_mtime_ns
    again = cli(*args, "--batch-size", 1)  # batch size is not part of what defines the images
    assert again.exit_code == 0 and "already complete" in again.output
    assert (json.loads(manifest.read_text())["ended"], manifest.stat().st_mtime_ns) == before

    other = cli(*args, "--steps", 3)
    assert other.exit_code == 3
    assert "other settings (changed: steps)" in other.output and len(other.output.strip().splitlines()) == 1
