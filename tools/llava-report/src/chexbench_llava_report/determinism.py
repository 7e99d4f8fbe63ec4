"""What makes a fine-tuning or a generation repeat itself bit for bit for a given seed on the CPU, and what its
floating-point results still depend on (recorded in the manifests).

On the CPU every kernel the stage uses is deterministic once the random draws are seeded, but float sums are split
by the number of intra-op threads and GEMM kernels are chosen by the CPU's instruction set: the same seed with
another thread count, CPU or torch build may round differently (a sum of 4M floats or a 512x4096x512 matmul differ
between 1 and 2 threads), and a greedy decoder can turn such a rounding into another word. On CUDA the
defaults are not deterministic (attention backward and cuBLAS reductions may use atomics or split sums); the stage
does not force torch's deterministic mode there because it needs CUBLAS_WORKSPACE_CONFIG set before CUDA starts and
fails on kernels without a deterministic variant.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deterministic_ops(device) -> Iterator[None]:
    """On the CPU: torch's deterministic algorithms inside (an op without a deterministic implementation raises
    instead of varying silently); the caller's setting is given back after. Elsewhere: nothing changes."""
    import torch

    if device.type != "cpu":
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def run_facts(device) -> dict:
    """Beyond the seed, what the numbers depend on: device, torch threads, the CPU's instruction set, versions."""
    import torch
    import transformers

    return {
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bitwise_repeatable": device.type == "cpu",
    }
