"""Faults over a finished generate run: damaged images, a lost marker, a second process, a failed re-run."""

import json
import os

from chexbench_common.hashing import sha256_file
from chexbench_common.lock import FolderLock
from chexbench_schema import read_table
from generate_helpers import make_prompts, numbered_prompts, sana_args


def _finished(tiny, tmp_path, cli, n=4):
    prompts = make_prompts(tmp_path / "prompts.parquet", numbered_prompts(n))
    args = sana_args(tiny, prompts, tmp_path, "r", "--batch-size", 2)
    assert cli(*args).exit_code == 0
    gen = tmp_path / "sana" / "r" / "generate"
    return args, gen, read_table(gen / "images.parquet", "images")


def test_deleted_truncated_and_replaced_images_are_regenerated_bit_identical(tiny, tmp_path, cli):
    args, gen, table = _finished(tiny, tmp_path, cli)
    files = [gen / "images" / p for p in table["path"]]
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:100])
    other = files[3].read_bytes()  # same size, other content: only the time (and then the hash) tells
    files[2].write_bytes(other[: files[2].stat().st_size].ljust(files[2].stat().st_size, b"\0"))
    again = cli(*args)
    assert again.exit_code == 0, again.output
    assert "3 generated, 1 already there" in again.output
    assert [sha256_file(f) for f in files] == list(table["sha256"])
    assert "already complete" in cli(*args).output


def test_full_verification_catches_what_the_fast_check_trusts(tiny, tmp_path, cli):
    args, gen, table = _finished(tiny, tmp_path, cli)
    target = gen / "images" / table["path"].iloc[0]
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF  # same size, and the time put back: only a hash can see it
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "already complete" in cli(*args).output
    full = cli(*args, "--verify", "full")
    assert full.exit_code == 0 and "1 generated, 3 already there" in full.output
    assert sha256_file(target) == table["sha256"].iloc[0]


def test_lost_success_marker_is_rebuilt_by_merge(tiny, tmp_path, cli):
    args, gen, _ = _finished(tiny, tmp_path, cli)
    (gen / "_SUCCESS").unlink()
    merged = cli("merge", "--results", tmp_path, "--model", "sana", "--run-id", "r")
    assert merged.exit_code == 0, merged.output
    assert (gen / "_SUCCESS").exists() and json.loads((gen / "manifest.json").read_text())["status"] == "success"


def test_merge_over_a_missing_image_names_the_shard_to_rerun(tiny, tmp_path, cli):
    args, gen, table = _finished(tiny, tmp_path, cli)
    (gen / "images" / table["path"].iloc[2]).unlink()
    merged = cli("merge", "--results", tmp_path, "--model", "sana", "--run-id", "r", "--force")
    assert merged.exit_code == 5
    assert "1 image(s)" in merged.output and "re-run shard(s) 0" in merged.output
    assert not (gen / "_SUCCESS").exists()
    assert cli(*args).exit_code == 0 and (gen / "_SUCCESS").exists()  # which is exactly what fixes it


def test_a_second_process_on_the_run_is_refused(tiny, tmp_path, cli):
    prompts = make_prompts(tmp_path / "prompts.parquet", numbered_prompts(2))
    part = tmp_path / "sana" / "r" / "generate" / "parts" / "shard-0-of-1"
    with FolderLock(part):
        busy = cli(*sana_args(tiny, prompts, tmp_path, "r", "--steps", 3))
    assert busy.exit_code == 7 and "is in use by process" in busy.output
    assert not list(part.parent.parent.glob("images/*.png"))


def test_failed_rerun_supersedes_the_finished_run(tiny, tmp_path, cli):
    args, gen, _ = _finished(tiny, tmp_path, cli)
    broken = tmp_path / "prompts.parquet"
    broken.write_bytes(b"PAR1 not parquet")
    assert cli(*args).exit_code == 3
    part = gen / "parts" / "shard-0-of-1"
    assert json.loads((part / "manifest.json").read_text())["status"] == "failed"
    assert not (part / "_SUCCESS").exists()
    merged = json.loads((gen / "manifest.json").read_text())  # the merged table embed would read stops counting
    assert merged["status"] == "superseded" and "failed" in merged["superseded_by"]["reason"]
    assert not (gen / "_SUCCESS").exists()
