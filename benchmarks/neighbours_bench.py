"""Which engine runs each exact nearest-neighbour search (chexbench_common.neighbours), measured on the same data in
the same run.

query: the k = 5 nearest of 4k queries in a 60k base, d = 768 (privacy DCR/NNDR, α/β, the report's outliers):
  engine (faiss)  chexbench_common.neighbours.nearest: faiss.knn proposes k + 8 candidates in float32, each is
                  re-computed in float64 and the float32 error bound proves none outside them is nearer
  ours            privacy's former tiled float32 GEMM search (`exact_topk`, read from git at OURS_COMMIT), also exact
  scikit-learn    NearestNeighbors(algorithm="brute"), float32 like the input (not exact near ties)
  faiss bare      faiss.knn alone (float32, no re-computation): what the exactness costs
self: the distance of each of 20k points (d = 768) to its 5th nearest other point (fidelity's P/R/D/C radii, α/β,
privacy's authenticity):
  engine (ours)   chexbench_common.neighbours.knn_radii_sq: tiled float32 GEMMs over each unordered pair of tiles
                  once, re-checked in float64 under the same bound
  faiss           the engine's `nearest(x, x, k + 1)`: faiss's full query-to-base product
  scikit-learn    NearestNeighbors(algorithm="brute").kneighbors(x, k + 1)

Features: 64-dimensional structure plus isotropic noise, float32, one seed, generated identically in every process.
Each method runs in its own process, `--repeat` calls there; `--rounds` rounds, methods interleaved; the fastest call
of each method is reported (the 2 cores are shared with other jobs, whose bursts make single timings up to 1.7x longer;
the 1-minute load average before each process is recorded). Every method's neighbours are compared with the
engine's (ids: rows that differ; distances: largest absolute difference).

    .venv/bin/python benchmarks/neighbours_bench.py [--queries 4000 --base 60000 --self-n 20000 --rounds 2 --repeat 2]

Results: benchmarks/results/neighbours.json and neighbours.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
OURS_COMMIT = "8076c5076c8df16401ae8e00ddc7eee5f47b7bfd"  # the last commit with privacy's own exact search
OURS_PATH = "tools/privacy/src/chexbench_privacy/neighbours.py"
D, K = 768, 5


def features(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((64, D)).astype(np.float32)
    return rng.standard_normal((n, 64)).astype(np.float32) @ basis + 0.3 * rng.standard_normal((n, D), np.float32)


def _former_search(source: Path):
    spec = importlib.util.spec_from_file_location("former_neighbours", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.exact_topk


def _search(mode: str, method: str, sizes: dict, former: str):
    """The data of `mode` and a function running `method` on it (returns distances, ids or None)."""
    import faiss
    from chexbench_common.neighbours import knn_radii_sq, nearest
    from sklearn.neighbors import NearestNeighbors

    if mode == "query":
        query, base = features(sizes["queries"], 1), features(sizes["base"], 2)
        return {
            "engine (faiss)": lambda: nearest(query, base, K),
            "ours": lambda: _former_search(Path(former))(query, base, K, tile=4096),
            "scikit-learn": lambda: NearestNeighbors(n_neighbors=K, algorithm="brute").fit(base).kneighbors(query),
            "faiss bare": lambda: (lambda sq, ids: (np.sqrt(sq), ids))(*faiss.knn(query, base, K)),
        }[method]
    x = features(sizes["self_n"], 3)
    return {
        "engine (ours)": lambda: (np.sqrt(knn_radii_sq(x, K, tile=2048)), None),
        "faiss": lambda: (nearest(x, x, K + 1)[0][:, K], None),
        "scikit-learn": lambda: (
            NearestNeighbors(n_neighbors=K + 1, algorithm="brute").fit(x).kneighbors(x)[0][:, K],
            None,
        ),
    }[method]


def _run(mode: str, method: str, sizes: dict, out: str, former: str, repeat: int, queue) -> None:
    """`repeat` timed calls of one method in this process; its times and its neighbours (saved to `out`)."""
    search = _search(mode, method, sizes, former)
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        dist, ids = search()
        seconds.append(time.perf_counter() - start)
    np.savez(out, dist=np.asarray(dist, np.float64), ids=np.asarray(ids if ids is not None else []))
    queue.put(seconds)


def isolated(*args) -> list[float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(*args, queue))
    proc.start()
    seconds = queue.get()
    proc.join()
    return seconds


METHODS = {
    "query": ["engine (faiss)", "ours", "scikit-learn", "faiss bare"],
    "self": ["engine (ours)", "faiss", "scikit-learn"],
}


def measure(sizes: dict, rounds: int, repeat: int, work: Path) -> dict:
    former = work / "former_neighbours.py"
    former.write_bytes(
        subprocess.run(["git", "show", f"{OURS_COMMIT}:{OURS_PATH}"], cwd=ROOT, check=True, capture_output=True).stdout
    )
    times = {mode: {m: [] for m in methods} for mode, methods in METHODS.items()}
    loads = []
    for _ in range(rounds):
        for mode, methods in METHODS.items():
            for method in methods:
                loads.append(round(os.getloadavg()[0], 1))
                out = work / f"{mode}-{method}.npz"
                times[mode][method] += isolated(mode, method, sizes, str(out), str(former), repeat)
    result = {}
    for mode, methods in METHODS.items():
        engine = np.load(work / f"{mode}-{methods[0]}.npz")
        rows = {}
        for method in methods:
            got = np.load(work / f"{mode}-{method}.npz")
            row = {
                "seconds": round(min(times[mode][method]), 2),
                "calls_s": [round(t, 2) for t in times[mode][method]],
            }
            row["max_abs_distance_diff"] = float(np.abs(got["dist"] - engine["dist"]).max())
            if mode == "query":
                row["rows_with_other_ids"] = int((got["ids"] != engine["ids"]).any(axis=1).sum())
            rows[method] = row
        best = rows[methods[0]]["seconds"]
        for row in rows.values():
            row["time_over_engine"] = round(row["seconds"] / best, 2)
        result[mode] = rows
    return {
        "sizes": sizes,
        "k": K,
        "d": D,
        "rounds": rounds,
        "repeat": repeat,
        "load_1min_before_each_run": loads,
    } | result


def write(entry: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    entry |= {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "faiss": __import__("faiss").__version__,
        }
    }
    (RESULTS / "neighbours.json").write_text(json.dumps(entry, indent=2) + "\n")
    s, m = entry["sizes"], entry["machine"]
    lines = [
        "# Exact nearest-neighbour engines",
        "",
        f"Written by `benchmarks/neighbours_bench.py` ({m['cores']} cores shared with other jobs, {m['cpu']}, numpy "
        f"{m['numpy']}, faiss-cpu {m['faiss']}). Same float32 features (d = {entry['d']}) for every method, each in "
        f"its own process, fastest of {entry['rounds']} interleaved rounds x {entry['repeat']} calls; 1-minute load "
        f"average before the runs: "
        f"{min(entry['load_1min_before_each_run'])}–{max(entry['load_1min_before_each_run'])}.",
        "",
        f"## query: k = {entry['k']} nearest of {s['queries']:,} queries in a {s['base']:,} base",
        "",
        "| method | seconds | time / engine | rows with other neighbours than the engine | max abs distance diff |",
        "|---|---|---|---|---|",
    ]
    for method, r in entry["query"].items():
        lines.append(
            f"| {method} | {r['seconds']} | {r['time_over_engine']} | {r['rows_with_other_ids']} "
            f"| {r['max_abs_distance_diff']:.2g} |"
        )
    lines += [
        "",
        f"## self: distance to the {entry['k']}th nearest other point, {s['self_n']:,} points",
        "",
        "| method | seconds | time / engine | max abs distance diff |",
        "|---|---|---|---|",
    ]
    for method, r in entry["self"].items():
        lines.append(f"| {method} | {r['seconds']} | {r['time_over_engine']} | {r['max_abs_distance_diff']:.2g} |")
    (RESULTS / "neighbours.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--base", type=int, default=60_000)
    parser.add_argument("--self-n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sizes = {"queries": args.queries, "base": args.base, "self_n": args.self_n}
    with tempfile.TemporaryDirectory() as work:
        write(measure(sizes, args.rounds, args.repeat, Path(work)))
    print((RESULTS / "neighbours.md").read_text())


if __name__ == "__main__":
    main()
