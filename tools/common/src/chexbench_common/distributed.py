"""Distributed ranks under every launcher. torchrun and `accelerate launch` set torch's variables (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT); Lightning reads Slurm's itself. A Slurm job whose tasks `srun` started, one per
GPU (compose/hpc/common.sh does that for a job with several tasks), has only Slurm's: `torch_env_from_slurm` derives
torch's from them, the way Lightning's SLURMEnvironment does, so a transformers Trainer forms the same world."""

from __future__ import annotations

import os
import re

# Slurm's compressed host lists: "gpu01", "gpu01,gpu02", "gpu[01-04,07]", "a[1-2],b3"
_RANGE_HOST = re.compile(r"^([^\[,]+)\[([^\]]+)\]")


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (the rank-0 node: MASTER_ADDR)."""
    nodelist = nodelist.strip()
    match = _RANGE_HOST.match(nodelist)
    if match:
        prefix, ranges = match.groups()
        return prefix + ranges.split(",")[0].split("-")[0]
    return nodelist.split(",")[0]


def torch_env_from_slurm(env: dict | None = None) -> bool:
    """Set torch's distributed variables from Slurm's when srun started several tasks and no launcher set them.
    Returns whether it did (a job with one task, or one started by torchrun, is left alone)."""
    env = os.environ if env is None else env
    if int(env.get("SLURM_NTASKS", "1")) < 2 or "SLURM_PROCID" not in env or "RANK" in env:
        return False
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or "127.0.0.1"
    env.update(
        RANK=env["SLURM_PROCID"],
        WORLD_SIZE=env["SLURM_NTASKS"],
        LOCAL_RANK=env.get("SLURM_LOCALID", "0"),
        LOCAL_WORLD_SIZE=env.get("SLURM_NTASKS_PER_NODE", env["SLURM_NTASKS"]).split("(")[0],
        MASTER_ADDR=env.get("MASTER_ADDR", first_host(nodelist)),
        # Lightning's choice: the job id picks a port in 10000-19999, the same in every task of the job
        MASTER_PORT=env.get("MASTER_PORT", str(10000 + int(env.get("SLURM_JOB_ID", "0")) % 10000)),
    )
    return True
