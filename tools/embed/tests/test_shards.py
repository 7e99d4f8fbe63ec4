"""Embed shards through the common sharding module: only when asked, merged equal to one unsharded run."""

import numpy as np
from chexbench_schema import read_embeddings


def test_merged_shards_equal_one_unsharded_run(tmp_path, tiny_raddino, image_sets, embed, monkeypatch):
    sets = (*image_sets["real"], *image_sets["synthetic"])
    base = ("run", "--model", "m", *sets, "--extractor", f"raddino={tiny_raddino}", "--num-workers", "0")
    whole = embed(*base, "--run-id", "whole")
    assert whole.exit_code == 0, whole.stderr

    assert embed(*base, "--run-id", "sharded", "--num-shards", "3", "--shard-index", "0").exit_code == 0
    early = embed("merge", "--model", "m", "--run-id", "sharded")
    assert early.exit_code == 5
    assert "shard(s) 1, 2 of 3 have not finished" in early.stderr

    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    for task in ("2", "3"):  # the remaining shards take their index from the Slurm array (--array=1-3)
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        shard = embed(*base, "--run-id", "sharded", "--shard", "auto")
        assert shard.exit_code == 0, shard.stderr
        assert f"parts/shard-{int(task) - 1}-of-3" in shard.stdout
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
    assert merged.exit_code == 3 and "shard 1 of 2 read other input tables than shard 0" in merged.stderr
    assert not (tmp_path / "Results" / "m" / "default" / "embed" / "real-raddino.parquet").exists()


def test_slurm_array_variables_alone_never_shard(tmp_path, tiny_raddino, image_sets, embed, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    result = embed("run", "--model", "m", *image_sets["real"], "--extractor", f"raddino={tiny_raddino}")
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "Results" / "m" / "default" / "embed"
    assert (out / "_SUCCESS").exists() and not (out / "parts").exists()
    assert len(read_embeddings(out / "real-raddino.parquet").frame) == len(image_sets["real_names"])
