"""Shards from a Slurm array (--shard auto) write their own parts; merge insists on all of them."""

import json

from chexbench_schema import read_metadata, read_table
from generate_helpers import make_prompts, numbered_prompts, sana_args


def test_slurm_array_shards_then_merge(tiny, tmp_path, cli, monkeypatch):
    prompts = make_prompts(tmp_path / "prompts.parquet", numbered_prompts(5))
    args = sana_args(tiny, prompts, tmp_path, "arr", "--batch-size", 2, "--num-images-per-prompt", 2)
    gen = tmp_path / "sana" / "arr" / "generate"
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "0")
    for task in ("2", "0"):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        result = cli(*args, "--shard", "auto")
        assert result.exit_code == 0, result.output
        assert "chexbench-generate merge" in result.output  # says what to do next
    assert not (gen / "images.parquet").exists()

    early = cli("merge", "--results", tmp_path, "--model", "sana", "--run-id", "arr")
    assert early.exit_code == 5
    assert "shard(s) 1 of 3 have not finished" in early.output and not (gen / "_SUCCESS").exists()

    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert cli(*args, "--shard", "auto").exit_code == 0
    merged = cli("merge", "--results", tmp_path, "--model", "sana", "--run-id", "arr")
    assert merged.exit_code == 0, merged.output
    table = read_table(gen / "images.parquet", "images")
    assert len(table) == 10 and table["image_id"].is_unique and table["prompt_id"].nunique() == 5
    parts = [read_table(gen / "parts" / f"shard-{k}-of-3" / "images.parquet", "images") for k in range(3)]
    assert [len(p) for p in parts] == [4, 4, 2]  # contiguous prompts 0,1 / 2,3 / 4
    assert read_metadata(gen / "images.parquet")["extra"]["images_root"] == "images"
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["counts"]["num_shards"] == 3 and manifest["status"] == "success"
    assert manifest["params"]["settings"]["steps"] == 2 and manifest["params"]["settings"]["height"] == 64
    assert [e["shard_index"] for e in manifest["execution"]] == [0, 1, 2]


def test_merge_without_parts_says_so(tmp_path, cli):
    result = cli("merge", "--results", tmp_path, "--model", "sana", "--run-id", "none")
    assert result.exit_code == 3 and "no shard folders under" in result.output
    assert not (tmp_path / "sana").exists()  # the refused merge leaves no folder behind


def test_slurm_array_variables_alone_never_shard(tiny, tmp_path, cli, monkeypatch):
    prompts = make_prompts(tmp_path / "prompts.parquet", numbered_prompts(3))
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    result = cli(*sana_args(tiny, prompts, tmp_path, "one"))
    assert result.exit_code == 0, result.output
    gen = tmp_path / "sana" / "one" / "generate"
    assert len(read_table(gen / "images.parquet", "images")) == 3
    assert [p.name for p in (gen / "parts").iterdir()] == ["shard-0-of-1"]
