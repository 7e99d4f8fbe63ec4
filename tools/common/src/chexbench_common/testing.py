"""Helpers the stages' tests share (no test framework imported here)."""

from __future__ import annotations

import os
import subprocess


def run_as_srun_tasks(argv: list[str], tasks: int = 2, timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """Run `argv` once per task, concurrently, each with the variables `srun --ntasks-per-node=<tasks>` gives the
    tasks of one job on one node (and nothing a launcher would add); returns each task's result, rank order."""
    job = {
        "SLURM_JOB_ID": str(4000 + os.getpid() % 5000),  # the derived rendezvous port differs between test runs
        "SLURM_JOB_NAME": "chexbench-test",
        "SLURM_NTASKS": str(tasks),
        "SLURM_NTASKS_PER_NODE": str(tasks),
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_NODELIST": "localhost",
    }
    processes = [
        subprocess.Popen(
            argv,
            env={**os.environ, **job, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(tasks)
    ]
    outputs = [process.communicate(timeout=timeout) for process in processes]
    return [
        subprocess.CompletedProcess(argv, process.returncode, out, err)
        for process, (out, err) in zip(processes, outputs, strict=True)
    ]
