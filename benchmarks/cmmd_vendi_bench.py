"""CMMD's kernel and the Vendi score against their compute bounds, with peak memory.

* CMMD (chexbench_fidelity.cmmd): bound = the same float32 GEMM tiles alone (each symmetric tile pair once, as the
  estimator visits them) — the distance products any exact full-matrix MMD needs; the rest (norms, expm1, float64
  sums) is the overhead measured. Sizes up to 20k x 20k at d = 768 here (the full 75k x 75k x 768 is 14x the 20k
  work: the ratio is size-independent once the tiles are full, and memory stays at inputs + one tile).
* Vendi (chexbench_fidelity.vendi, covariance form for d <= n): bound = XᵀX (float64, the same syrk) plus eigvalsh of
  the d x d result; at the issue's size, 75k x 768.

Every measurement runs in its own subprocess (peak RSS = its own), the minimum of REPEAT runs is reported, with the
machine's load average. Run from the repository root:

    .venv/bin/python benchmarks/cmmd_vendi_bench.py            # CMMD 10k and 20k, Vendi 75k, d = 768
    .venv/bin/python benchmarks/cmmd_vendi_bench.py --quick    # small sizes, for checking the script

Results: benchmarks/results/cmmd_vendi.json and cmmd_vendi.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPEAT = 2


def features(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32) + 0.1
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # L2-normalised, as CLIP embeddings


def gemm_tiles(x: np.ndarray, y: np.ndarray, tile: int) -> None:
    """The GEMMs of cmmd(): x against itself and y against itself (each tile pair once), x against y."""
    from chexbench_fidelity.cmmd import _blocks

    for a, b in ((x, None), (y, None), (x, y)):
        right = a if b is None else b
        for i, bi in enumerate(_blocks(len(a), tile)):
            for j, bj in enumerate(_blocks(len(right), tile)):
                if b is None and j < i:
                    continue
                a[bi] @ right[bj].T


def vendi_bound(x: np.ndarray) -> None:
    import scipy.linalg

    u = x.astype(np.float64)
    scipy.linalg.eigvalsh(u.T @ u / len(u), check_finite=False)


def worker(method: str, n: int, d: int) -> dict:
    x, y = features(n, d, 1), features(n, d, 2)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if method == "cmmd":
        from chexbench_fidelity.cmmd import cmmd

        cmmd(x, y)
    elif method == "cmmd_gemm":
        from chexbench_fidelity.cmmd import TILE

        gemm_tiles(x, y, TILE)
    elif method == "vendi":
        from chexbench_fidelity.vendi import vendi_score

        vendi_score(x)
    elif method == "vendi_bound":
        vendi_bound(x)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_rss_gb": peak / 2**20, "extra_rss_gb": (peak - base) / 2**20}


def measure(method: str, n: int, d: int) -> dict:
    runs = []
    for _ in range(REPEAT):
        out = subprocess.run(
            [sys.executable, __file__, "--worker", method, str(n), str(d)], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return best | {"load_avg_1min": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=3)
    args = parser.parse_args()
    if args.worker:
        method, n, d = args.worker
        print(json.dumps(worker(method, int(n), int(d))))
        return
    cmmd_sizes = [(2000, 768)] if args.quick else [(10000, 768), (20000, 768)]
    vendi_sizes = [(5000, 768)] if args.quick else [(20000, 768), (75000, 768)]
    results = []
    for name, bound, sizes in (("cmmd", "cmmd_gemm", cmmd_sizes), ("vendi", "vendi_bound", vendi_sizes)):
        for n, d in sizes:
            ours, ref = measure(name, n, d), measure(bound, n, d)
            results.append(
                {"metric": name, "n": n, "d": d, "ours": ours, "bound": ref, "ratio": ours["seconds"] / ref["seconds"]}
            )
            print(json.dumps(results[-1]), flush=True)
    if args.quick:
        return
    (HERE / "results" / "cmmd_vendi.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# CMMD kernel and Vendi score against their compute bounds",
        "",
        f"Machine: {os.cpu_count()} CPU cores (shared with other jobs: load average beside each row); "
        "`.venv/bin/python benchmarks/cmmd_vendi_bench.py`. Target: ≤ 1.5 × the bound, < 4 GB.",
        "",
        "| metric | n per set | d | ours (s) | bound (s) | ratio | peak RSS ours (GB) | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['metric']} | {r['n']} | {r['d']} | {r['ours']['seconds']:.2f} | {r['bound']['seconds']:.2f} | "
            f"{r['ratio']:.2f} | {r['ours']['peak_rss_gb']:.2f} | {r['ours']['load_avg_1min']:.1f} |"
        )
    (HERE / "results" / "cmmd_vendi.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
