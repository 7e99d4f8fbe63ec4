"""torch's distributed variables from Slurm's, for tasks srun started: the root node as Lightning resolves it, the
ranks as Slurm numbers them, and nothing touched where a launcher already set them or the job has one task."""

import pytest
from chexbench_common.distributed import first_host, torch_env_from_slurm


@pytest.mark.parametrize("nodes", ["gpu01", "gpu01,gpu02", "gpu[01-04,07]", "gpu[07,01-04]", "a[1-2],b3", "node-a1"])
def test_first_host_is_the_root_node_lightning_resolves(nodes):
    from lightning.fabric.plugins.environments import SLURMEnvironment

    assert first_host(nodes) == SLURMEnvironment.resolve_root_node_address(nodes)


def slurm(**extra) -> dict:
    return {
        "SLURM_JOB_ID": "123456",
        "SLURM_NTASKS": "4",
        "SLURM_NTASKS_PER_NODE": "2(x2)",
        "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_NODELIST": "gpu[05-06]",
        **extra,
    }


def test_srun_tasks_become_torch_ranks():
    env = slurm()
    assert torch_env_from_slurm(env)
    assert {k: env[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR")} == {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "gpu05",
    }
    other = slurm(SLURM_PROCID="0", SLURM_LOCALID="0")
    torch_env_from_slurm(other)
    assert other["MASTER_PORT"] == env["MASTER_PORT"] and 10000 <= int(env["MASTER_PORT"]) < 20000


@pytest.mark.parametrize(
    "env", [slurm(SLURM_NTASKS="1"), slurm(RANK="0", WORLD_SIZE="8"), {"SLURM_NTASKS": "2"}, {}], ids=str
)
def test_one_task_a_launcher_or_no_slurm_leave_the_environment_alone(env):
    before = dict(env)
    assert not torch_env_from_slurm(env)
    assert env == before
