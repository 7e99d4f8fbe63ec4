"""Shards: slicing, Slurm defaults, and `merge` against an unsharded run."""

from __future__ import annotations

import numpy as np
import pytest
from chexbench_embed.shards import shard_slice, slurm_defaults
from chexbench_schema import read_embeddings


@pytest.mark.parametrize(("n", "count"), [(10, 3), (4, 4), (2, 5), (7, 1)])
def test_shards_cover_every_row_once_like_array_split(n, count):
    parts = [list(range(n))[shard_slice(n, count, k)] for k in range(count)]
    assert parts == [list(p) for p in np.array_split(np.arange(n), count)]


def test_slurm_array_defaults():
    assert slurm_defaults({}) == (1, 0)
    env = {"SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4"}
    assert slurm_defaults(env) == (3, 1)  # array 4-6: the third task of ids 4, 5, 6 is index 1
    assert slurm_defaults(env | {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_STEP": "2"}) == (3, 2)  # 4-8:2


def test_merged_shards_equal_one_unsharded_run(tmp_path, tiny_raddino, image_sets, embed, monkeypatch):
    sets = (*image_sets["real"], *image_sets["synthetic"])
    base = ("run", "--model", "m", *sets, "--extractor", f"raddino={tiny_raddino}", "--num-workers", "0")
    whole = embed(*base, "--run-id", "whole")
    assert whole.exit_code == 0, whole.stderr

    assert embed(*base, "--run-id", "sharded", "--num-shards", "3", "--shard-index", "0").exit_code == 0
    early = embed("merge", "--model", "m", "--run-id", "sharded")
    assert early.exit_code == 4
    assert "shard 1 of 3 has not finished" in early.stderr and "shard 2 of 3 has not finished" in early.stderr

    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    for task in ("1", "2"):  # the remaining shards take their index from the Slurm array
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        shard = embed(*base, "--run-id", "sharded")
        assert shard.exit_code == 0, shard.stderr
        assert f"shard-{task}-of-3" in shard.stdout
    merged = embed("merge", "--model", "m", "--run-id", "sharded")
    assert merged.exit_code == 0, merged.stderr
    out = tmp_path / "Results" / "m" / "sharded" / "embed"
    assert (out / "_SUCCESS").exists()
    for name in ("real-raddino.parquet", "synthetic-raddino.parquet"):
        one = read_embeddings(tmp_path / "Results" / "m" / "whole" / "embed" / name)
        parts = read_embeddings(out / name)
        assert list(parts.frame["image_id"]) == list(one.frame["image_id"])
        np.testing.assert_allclose(parts.vectors, one.vectors, rtol=1e-5, atol=1e-6)
        assert parts.metadata["extra"]["preprocessing"] == one.metadata["extra"]["preprocessing"]


def test_merge_refuses_shards_of_different_inputs(tmp_path, tiny_raddino, image_sets, make, embed):
    other = make.prompts_table(tmp_path / "other.parquet", image_sets["real_names"][:3])
    for k, table in enumerate((image_sets["prompts"], other)):
        shard = ("--extractor", f"raddino={tiny_raddino}", "--num-shards", "2", "--shard-index", str(k))
        result = embed("run", "--model", "m", "--prompts", table, "--real-root", image_sets["real_root"], *shard)
        assert result.exit_code == 0, result.stderr
    merged = embed("merge", "--model", "m")
    assert merged.exit_code == 4 and "shard 1 of 2 read different input tables than shard 0" in merged.stderr
    assert not (tmp_path / "Results" / "m" / "default" / "embed" / "real-raddino.parquet").exists()
