"""Privacy benchmarks: the exact nearest-neighbour search at the stage's scale, and re-ID embedding throughput.

knn mode: exact top-k (k = 5) of 20k synthetic x 200k training embeddings (d = 768, float32) with the stage's search
(`chexbench_common.neighbours.nearest`), against the matrix-product bound measured in the same run (the same tiled
float32 GEMMs and nothing else), peak memory of each in its own process, scikit-learn's brute-force
NearestNeighbors on a 2k-query slice as a peer, and the projection to 75k x 370k (time scales with the product).
reid mode: re-ID embedding throughput of the full-size Siamese ResNet-50 (random weights) at 224 px, CPU, and CUDA
when present.

    .venv/bin/python benchmarks/privacy_bench.py knn [--queries 20000 --base 200000]
    .venv/bin/python benchmarks/privacy_bench.py reid

Results: benchmarks/results/privacy.json (one entry per mode and device) and privacy.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
from machine import cpu_model

RESULTS = Path(__file__).parent / "results"
D, K, TILE = 768, 5, 4096


def data(n_query: int, n_base: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n_query, D), dtype=np.float32), rng.standard_normal((n_base, D), dtype=np.float32)


def _gemm_bound(n_query: int, n_base: int, queue) -> None:
    query, base = data(n_query, n_base)
    start = time.perf_counter()
    for qs in range(0, n_query, TILE):
        for bs in range(0, n_base, TILE):
            query[qs : qs + TILE] @ base[bs : bs + TILE].T
    queue.put((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20))


def _ours(n_query: int, n_base: int, queue) -> None:
    from chexbench_common.neighbours import nearest

    query, base = data(n_query, n_base)
    ticks = []
    start = time.perf_counter()
    nearest(query, base, K, batch=TILE, on_batch=ticks.append)
    queue.put((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, len(ticks)))


def _sklearn(n_query: int, n_base: int, queue) -> None:
    from sklearn.neighbors import NearestNeighbors

    query, base = data(n_query, n_base)
    start = time.perf_counter()
    NearestNeighbors(n_neighbors=K, algorithm="brute").fit(base).kneighbors(query)
    queue.put((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20))


def isolated(fn, *args):
    """Run fn in a fresh process so its peak RSS is its own."""
    queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=fn, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def knn(n_query: int, n_base: int) -> dict:
    bound_s, bound_gb = isolated(_gemm_bound, n_query, n_base)
    ours_s, ours_gb, tiles = isolated(_ours, n_query, n_base)
    slice_q = min(2000, n_query)
    ours_slice_s, _, _ = isolated(_ours, slice_q, n_base)
    sk_s, sk_gb = isolated(_sklearn, slice_q, n_base)
    scale = (75_000 * 370_000) / (n_query * n_base)
    return {
        "queries": n_query,
        "base": n_base,
        "d": D,
        "k": K,
        "tile": TILE,
        "progress_ticks": tiles,
        "gemm_bound_s": round(bound_s, 2),
        "ours_s": round(ours_s, 2),
        "ratio_to_bound": round(ours_s / bound_s, 3),
        "peak_rss_gb": round(ours_gb, 2),
        "bound_peak_rss_gb": round(bound_gb, 2),
        "slice_queries": slice_q,
        "ours_slice_s": round(ours_slice_s, 2),
        "sklearn_brute_slice_s": round(sk_s, 2),
        "sklearn_peak_rss_gb": round(sk_gb, 2),
        "sklearn_over_ours": round(sk_s / ours_slice_s, 2),
        "projected_75k_x_370k_h": round(ours_s * scale / 3600, 2),
        "projected_note": "time x (75k*370k)/(queries*base) on this machine's cores; the base grows to 1.1 GB float32",
    }


def reid(device: str, batch: int = 16, batches: int = 4) -> dict:
    import torch
    from chexbench_privacy.reid import SiameseReID

    model = SiameseReID().to(device).eval()
    x = torch.rand(batch, 3, 224, 224, device=device)
    with torch.inference_mode():
        model.embed(x)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(batches):
            model.embed(x)
        if device == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "device": device,
        "batch": batch,
        "images": batch * batches,
        "images_per_s": round(batch * batches / seconds, 1),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
    }


def write(key: str, entry: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "privacy.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    entry |= {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}}
    results[key] = entry
    path.write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Privacy benchmarks", "", "Written by `benchmarks/privacy_bench.py`.", ""]
    if "knn" in results:
        r = results["knn"]
        lines += [
            f"## Exact top-{r['k']}: {r['queries']:,} x {r['base']:,}, d = {r['d']} ({r['machine']['cores']} cores)",
            "",
            "| | seconds | peak RSS (GB) |",
            "|---|---|---|",
            f"| tiled float32 GEMMs only (bound) | {r['gemm_bound_s']} | {r['bound_peak_rss_gb']} |",
            f"| `nearest` (ours: faiss candidates, float64 certificate) | {r['ours_s']} | {r['peak_rss_gb']} |",
            f"| scikit-learn brute, {r['slice_queries']:,} queries | {r['sklearn_brute_slice_s']} "
            f"| {r['sklearn_peak_rss_gb']} |",
            f"| ours, same {r['slice_queries']:,} queries | {r['ours_slice_s']} | |",
            "",
            f"Ratio to the bound: **{r['ratio_to_bound']}x** (target <= 1.5x); scikit-learn / ours: "
            f"{r['sklearn_over_ours']}x; projected 75k x 370k: **{r['projected_75k_x_370k_h']} h** on these cores.",
            "",
        ]
    for key_, r in results.items():
        if key_.startswith("reid-"):
            lines += [
                f"## Re-ID embedding, {r['device']}" + (f" ({r['gpu']})" if r["gpu"] else f" ({r['threads']} threads)"),
                "",
                f"{r['images_per_s']} images/s at batch {r['batch']}, 224 px, full-size ResNet-50.",
                "",
            ]
    (RESULTS / "privacy.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["knn", "reid"])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--base", type=int, default=200_000)
    args = parser.parse_args()
    if args.mode == "knn":
        entry = knn(args.queries, args.base)
        write("knn", entry)
    else:
        import torch

        for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
            write(
                f"reid-{device}",
                reid(device, batch=64 if device == "cuda" else 16, batches=10 if device == "cuda" else 4),
            )
    print(json.dumps(json.loads((RESULTS / "privacy.json").read_text()), indent=2))


if __name__ == "__main__":
    main()
