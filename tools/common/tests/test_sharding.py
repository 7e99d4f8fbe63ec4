"""One Slurm parser, one assignment rule, sharding only when asked."""

import pytest
from chexbench_common.errors import BadInputError, IncompleteShardsError
from chexbench_common.rundir import StageRun
from chexbench_common.sharding import Shard, finished_parts, from_slurm, resolve


@pytest.mark.parametrize("n, count", [(10, 3), (3, 4), (1, 1), (0, 2), (7, 7)])
def test_slices_cover_every_unit_once_like_array_split(n, count):
    np = pytest.importorskip("numpy")
    parts = [list(range(n))[Shard(count, k).slice(n)] for k in range(count)]
    assert parts == [list(a) for a in np.array_split(np.arange(n), count)]


def test_slurm_parser_uses_count_id_min_and_step():
    env = {"SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "4"}
    assert from_slurm(env) == Shard(3, 2)  # --array=4-6
    assert from_slurm(env | {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_STEP": "2"}) == Shard(3, 2)  # 4-8:2
    with pytest.raises(BadInputError, match="not on the array's grid"):
        from_slurm(env | {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_STEP": "2"})
    with pytest.raises(BadInputError, match="needs a Slurm job array"):
        from_slurm({})


def test_sharding_happens_only_when_asked():
    array = {"SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_ID": "1"}
    assert resolve(None, None, None, array) == Shard()  # array variables alone: the whole run
    assert resolve("auto", None, None, array) == Shard(4, 1)
    assert resolve(None, 2, 1, array) == Shard(2, 1)
    with pytest.raises(BadInputError, match="not both"):
        resolve("auto", 2, 1, array)
    with pytest.raises(BadInputError, match="go together"):
        resolve(None, 2, None, {})
    with pytest.raises(BadInputError, match="not in 0..1"):
        resolve(None, 2, 2, {})


def _shard_run(tmp_path, k, n, params=None):
    stage = StageRun(tmp_path, "m", "r", Shard(n, k).stage("embed"), tool_version="0")
    stage.start({"x": 1, **(params or {}), **Shard(n, k).describe(rows=k)}, {})
    stage.finish()


def test_merge_check_names_unfinished_shards_and_refuses_disagreeing_ones(tmp_path):
    stage_dir = tmp_path / "m" / "r" / "embed"
    _shard_run(tmp_path, 0, 3)
    with pytest.raises(IncompleteShardsError, match=r"shard\(s\) 1, 2 of 3 have not finished") as caught:
        finished_parts(stage_dir, "chexbench-embed run ...")
    assert caught.value.exit_code == 5
    _shard_run(tmp_path, 1, 3)
    _shard_run(tmp_path, 2, 3, {"x": 2})
    with pytest.raises(BadInputError, match="shard 2 of 3 was run with other parameters"):
        finished_parts(stage_dir, "chexbench-embed run ...")
    _shard_run(tmp_path, 2, 3)
    assert [m["params"]["part"]["shard_index"] for m in finished_parts(stage_dir, "x")] == [0, 1, 2]
