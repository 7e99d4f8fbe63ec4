"""Fidelity benchmark: time and peak memory of chexbench-fidelity against torchmetrics
FID + KID and the `prdc` package on identical synthetic features, and P/R/D/C against its compute bound (the time plain
numpy takes for the three N x N x d float32 products any exact P/R/D/C needs), measured in the same run.

Every method runs in its own subprocess (peak RSS = its own), one after another; the machine's load average is
recorded next to each. Run from the repository root (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are dropped for the workers):

    .venv/bin/python benchmarks/fidelity_bench.py            # (a) 10k x 10k at d=768 and 2048, (b) 75k x 75k at d=768
    .venv/bin/python benchmarks/fidelity_bench.py --quick    # small sizes, a few seconds, for checking the script

Results: benchmarks/results/fidelity.json and fidelity.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
QUICK = os.environ.get("FIDELITY_BENCH_QUICK") == "1"  # set by --quick for the workers too
KID_SUBSETS, KID_SIZE, K, SEED = (10 if QUICK else 100), 1000, 5, 1234
BOUND_BLOCK = 4096
ROUNDS = 2  # part (a): every method once per round, rounds interleaved; the minimum per method is reported
REPEAT = 1  # timings per method within one worker process


def make_features(n: int, d: int, seed: int, shift: float, scale: float) -> np.ndarray:
    """Encoder-like float32 features: a 64-dimensional structure plus isotropic noise."""
    basis = np.random.default_rng(7).standard_normal((64, d)).astype(np.float32) / 8
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 64), dtype=np.float32) * scale
    return z @ basis + 0.3 * rng.standard_normal((n, d), dtype=np.float32) + shift


# ---------------------------------------------------------------- workers (each in its own process)


def _load(data: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(data / "real.npy"), np.load(data / "synth.npy")


def _draws(data: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    d = np.load(data / "kid_draws.npz")
    return list(zip(d["real"], d["synth"], strict=True))


def _best(fn, repeat: int = REPEAT) -> tuple[dict, dict]:
    """Run fn() -> (seconds, values) `repeat` times; the element-wise minimum of the timings, the last values."""
    best: dict = {}
    for _ in range(repeat):
        seconds, values = fn()
        best = {k: min(v, best.get(k, v)) for k, v in seconds.items()}
    return best, values


def worker_ours_fid_kid(data: Path) -> dict:
    from chexbench_fidelity.frechet import fit_gaussian, frechet_distance, psd_sqrt
    from chexbench_fidelity.kid import kernel_inception_distance

    real, synth = _load(data)
    draws = _draws(data)

    def once():
        t0 = time.perf_counter()
        g_real = fit_gaussian(real)
        sqrt_real = psd_sqrt(g_real.cov)
        t_real = time.perf_counter()
        fid = frechet_distance(g_real, fit_gaussian(synth), sqrt_real)
        t1 = time.perf_counter()
        kid = kernel_inception_distance(real, synth, subsets=KID_SUBSETS, subset_size=KID_SIZE, draws=draws)
        t2 = time.perf_counter()
        seconds = {"fid": t1 - t0, "fid_real_stats": t_real - t0, "fid_cached_real": t1 - t_real, "kid": t2 - t1}
        return seconds, {"fid": fid, "kid_mean": kid.mean, "kid_std": kid.std}

    seconds, values = _best(once)
    seconds["fid_kid"] = seconds["fid"] + seconds["kid"]
    return {"seconds": seconds, "values": values}


def worker_torchmetrics_fid_kid(data: Path) -> dict:
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    real, synth = _load(data)
    real_t, synth_t = torch.from_numpy(real), torch.from_numpy(synth)

    class Features(torch.nn.Module):
        num_features = real.shape[1]

        def forward(self, x):
            return x

    def once():
        t0 = time.perf_counter()
        fid_metric = FrechetInceptionDistance(feature=Features())
        fid_metric.update(real_t, real=True)
        fid_metric.update(synth_t, real=False)
        fid = float(fid_metric.compute())
        t1 = time.perf_counter()
        kid_metric = KernelInceptionDistance(feature=Features(), subsets=KID_SUBSETS, subset_size=KID_SIZE)
        kid_metric.update(real_t, real=True)
        kid_metric.update(synth_t, real=False)
        torch.manual_seed(SEED)
        kid_mean, kid_std = kid_metric.compute()
        t2 = time.perf_counter()
        return {"fid": t1 - t0, "kid": t2 - t1}, {"fid": fid, "kid_mean": float(kid_mean), "kid_std": float(kid_std)}

    seconds, values = _best(once)
    seconds["fid_kid"] = seconds["fid"] + seconds["kid"]
    return {"seconds": seconds, "values": values}


def worker_ours_prdc(data: Path) -> dict:
    """Ours, P/R/D/C alone and P/R/D/C with KID fused into its tiles (the same subsets as the KID workers), with the
    compute bound measured in the same process just before and just after (same load)."""
    from chexbench_fidelity.manifold import compute_prdc, compute_prdc_kid

    real, synth = _load(data)
    draws = _draws(data)
    bounds, times, fused_times = [], [], []
    for _ in range(max(REPEAT, 1)):
        bounds.append(_three_products(real, synth)["three_products"])
        t0 = time.perf_counter()
        result = compute_prdc(real, synth, K)
        t1 = time.perf_counter()
        fused, kid = compute_prdc_kid(real, synth, K, subsets=KID_SUBSETS, subset_size=KID_SIZE, draws=draws)
        times.append(t1 - t0)
        fused_times.append(time.perf_counter() - t1)
    bounds.append(_three_products(real, synth)["three_products"])
    return {
        "seconds": {"prdc": min(times), "prdc_kid": min(fused_times), "bound": min(bounds)},
        "all_seconds": {"prdc": times, "prdc_kid": fused_times, "bound": bounds},
        "values": result.as_dict(),
        "fused_values": {**fused.as_dict(), "kid_mean": kid.mean, "kid_std": kid.std},
    }


def worker_prdc_package(data: Path) -> dict:
    import contextlib
    import io

    from prdc import compute_prdc

    real, synth = _load(data)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = compute_prdc(real, synth, K)
    return {"seconds": {"prdc": time.perf_counter() - t0}, "values": {k: float(v) for k, v in result.items()}}


def _three_products(real: np.ndarray, synth: np.ndarray) -> dict:
    """Three plain numpy float32 products R Rᵀ, S Sᵀ, S Rᵀ; row blocks into one reused buffer when N x N won't fit."""
    n = len(real)
    rows = n if n <= 20000 else BOUND_BLOCK
    out = np.empty((rows, n), np.float32)
    seconds = {}
    for name, a, b in (("real_real", real, real), ("synth_synth", synth, synth), ("synth_real", synth, real)):
        bt = np.ascontiguousarray(b.T)
        t0 = time.perf_counter()
        for s in range(0, n, rows):
            np.matmul(a[s : s + rows], bt, out=out[: min(rows, n - s)])
        seconds[name] = time.perf_counter() - t0
    seconds["three_products"] = sum(seconds.values())
    return seconds


def worker_bound(data: Path) -> dict:
    real, synth = _load(data)
    return {"seconds": _three_products(real, synth), "values": {}}


def worker_ours_all(data: Path) -> dict:
    """The whole chexbench computation of part (b): FID, KID and P/R/D/C in one process."""
    from chexbench_fidelity.frechet import fit_gaussian, frechet_distance, psd_sqrt
    from chexbench_fidelity.kid import kernel_inception_distance
    from chexbench_fidelity.manifold import compute_prdc

    real, synth = _load(data)
    t0 = time.perf_counter()
    g_real = fit_gaussian(real)
    fid = frechet_distance(g_real, fit_gaussian(synth), psd_sqrt(g_real.cov))
    t1 = time.perf_counter()
    kid = kernel_inception_distance(real, synth, subsets=KID_SUBSETS, subset_size=KID_SIZE, seed=SEED)
    t2 = time.perf_counter()
    prdc = compute_prdc(real, synth, K)
    t3 = time.perf_counter()
    return {
        "seconds": {"fid": t1 - t0, "kid": t2 - t1, "prdc": t3 - t2, "total": t3 - t0},
        "values": {"fid": fid, "kid_mean": kid.mean, "kid_std": kid.std, **prdc.as_dict()},
    }


WORKERS = {name.removeprefix("worker_"): fn for name, fn in globals().items() if name.startswith("worker_")}


def _worker_main(name: str, data: Path) -> None:
    result = WORKERS[name](data)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps(result))


# ---------------------------------------------------------------- driver


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_worker(name: str, data: Path) -> dict:
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", name, "--data", str(data)],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    result["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(
        f"  {name}: {json.dumps(result['seconds'])} peak {result['peak_rss_gb']:.2f} GB load {result['load_avg_1min']}",
        flush=True,
    )
    return result


def prepare(folder: Path, n: int, d: int) -> None:
    import torch

    np.save(folder / "real.npy", make_features(n, d, 1, 0.0, 1.0))
    np.save(folder / "synth.npy", make_features(n, d, 2, 0.02, 1.1))
    torch.manual_seed(SEED)  # the subsets torchmetrics' KID draws after this seed, in its order
    m = min(KID_SIZE, n)
    pairs = [(torch.randperm(n)[:m].numpy(), torch.randperm(n)[:m].numpy()) for _ in range(KID_SUBSETS)]
    np.savez(folder / "kid_draws.npz", real=np.stack([p[0] for p in pairs]), synth=np.stack([p[1] for p in pairs]))


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def part_a(n: int, d: int, tmp: Path) -> dict:
    print(f"(a) N={n} d={d}", flush=True)
    folder = tmp / f"a_{n}_{d}"
    folder.mkdir()
    prepare(folder, n, d)
    names = ("ours_prdc", "prdc_package", "ours_fid_kid", "torchmetrics_fid_kid")
    rounds = [{name: run_worker(name, folder) for name in names} for _ in range(ROUNDS)]
    res = {}
    for name in names:  # the least disturbed timing of each method (the machine is shared), the last values
        res[name] = dict(rounds[-1][name])
        res[name]["seconds"] = {k: min(r[name]["seconds"][k] for r in rounds) for k in rounds[-1][name]["seconds"]}
        res[name]["peak_rss_gb"] = max(r[name]["peak_rss_gb"] for r in rounds)
        res[name]["rounds"] = [{k: r[name][k] for k in ("seconds", "load_avg_1min")} for r in rounds]
    # ours in total: FID + P/R/D/C with KID fused into its tiles (what evaluate.py runs on a P/R/D/C extractor)
    ours_t = res["ours_fid_kid"]["seconds"]["fid"] + res["ours_prdc"]["seconds"]["prdc_kid"]
    theirs_t = res["torchmetrics_fid_kid"]["seconds"]["fid_kid"] + res["prdc_package"]["seconds"]["prdc"]
    ov, tv = res["ours_fid_kid"]["values"], res["torchmetrics_fid_kid"]["values"]
    fv = res["ours_prdc"]["fused_values"]
    theirs_kid_prdc = res["torchmetrics_fid_kid"]["seconds"]["kid"] + res["prdc_package"]["seconds"]["prdc"]
    summary = {
        "n": n,
        "d": d,
        "speedup_total": theirs_t / ours_t,
        "speedup_total_unfused": theirs_t
        / (res["ours_fid_kid"]["seconds"]["fid_kid"] + res["ours_prdc"]["seconds"]["prdc"]),
        "speedup_fid": res["torchmetrics_fid_kid"]["seconds"]["fid"] / res["ours_fid_kid"]["seconds"]["fid"],
        "speedup_kid": res["torchmetrics_fid_kid"]["seconds"]["kid"] / res["ours_fid_kid"]["seconds"]["kid"],
        "speedup_prdc": res["prdc_package"]["seconds"]["prdc"] / res["ours_prdc"]["seconds"]["prdc"],
        "speedup_kid_prdc_fused": theirs_kid_prdc / res["ours_prdc"]["seconds"]["prdc_kid"],
        "prdc_over_bound": res["ours_prdc"]["seconds"]["prdc"] / res["ours_prdc"]["seconds"]["bound"],
        "prdc_kid_over_bound": res["ours_prdc"]["seconds"]["prdc_kid"] / res["ours_prdc"]["seconds"]["bound"],
        "fid_rel_diff": rel(ov["fid"], tv["fid"]),
        "kid_mean_rel_diff": rel(fv["kid_mean"], tv["kid_mean"]),
        "kid_std_rel_diff": rel(fv["kid_std"], tv["kid_std"]),
        "kid_standalone_mean_rel_diff": rel(ov["kid_mean"], tv["kid_mean"]),
        "kid_fused_vs_standalone_mean_rel_diff": rel(fv["kid_mean"], ov["kid_mean"]),
        "kid_fused_vs_standalone_std_rel_diff": rel(fv["kid_std"], ov["kid_std"]),
        "prdc_identical": res["ours_prdc"]["values"] == res["prdc_package"]["values"]
        and {k: fv[k] for k in res["prdc_package"]["values"]} == res["prdc_package"]["values"],
        "prdc_max_abs_diff": max(
            abs(res["ours_prdc"]["values"][k] - res["prdc_package"]["values"][k]) for k in res["prdc_package"]["values"]
        ),
    }
    return {"summary": summary, "runs": res}


def part_b(n: int, d: int, tmp: Path) -> dict:
    print(f"(b) N={n} d={d}", flush=True)
    folder = tmp / f"b_{n}_{d}"
    folder.mkdir()
    prepare(folder, n, d)
    res = {
        "bound_before": run_worker("bound", folder),
        "ours_all": run_worker("ours_all", folder),
        "bound_after": run_worker("bound", folder),
    }
    bound = (res["bound_before"]["seconds"]["three_products"] + res["bound_after"]["seconds"]["three_products"]) / 2
    summary = {
        "n": n,
        "d": d,
        "bound_s": bound,
        "prdc_over_bound": res["ours_all"]["seconds"]["prdc"] / bound,
        "total_over_bound": res["ours_all"]["seconds"]["total"] / bound,
        "peak_rss_gb": res["ours_all"]["peak_rss_gb"],
    }
    return {"summary": summary, "runs": res}


def machine() -> dict:
    from threadpoolctl import threadpool_info

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": [
            {k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")} for i in threadpool_info()
        ],
        "env_dropped": ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"],
    }


def _loads(run: dict) -> str:
    rounds = run.get("rounds") or [run]
    return ", ".join(f"{r['load_avg_1min'][0]:.1f}" for r in rounds)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Fidelity benchmark: chexbench-fidelity against torchmetrics and prdc",
        "",
        f"Machine: {m['cpus']} cores shared with other jobs, {m['platform']}, numpy {m['numpy']}, BLAS "
        + ", ".join(
            f"{b['internal_api']} {b.get('version')} {b.get('architecture')} x{b['num_threads']}" for b in m["blas"]
        )
        + " (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for the workers). Generated by `benchmarks/fidelity_bench.py`;"
        " raw numbers, every round and the load average before each step are in `fidelity.json`.",
        "",
        "Synthetic float32 features (64-dim structure + isotropic noise), identical for every method. Every method runs"
        " in its own process (peak = its peak RSS, features included). Part (a) runs each method once per round, "
        f"{results['settings'].get('rounds', 1)} rounds interleaved, and reports the fastest round of each: the "
        "machine is shared with other jobs (1-minute load average before each step in the last column); under a load "
        "of 5 to 10 single timings were up to 4x longer, so ratios are taken between the fastest rounds.",
        "",
        "- **bound**: time of the three plain numpy float32 products R·Rᵀ, S·Sᵀ, S·Rᵀ (N x N x d each) that any exact"
        " P/R/D/C needs, measured in the same process right before and after ours (part a) or in separate processes"
        " before and after ours (part b: N x N does not fit in memory, so the products run in 4096-row blocks into one"
        " reused buffer; mean of before and after).",
        "- **FID**: ours cold = both covariances + eigh of Σ_real + the rest; `cached` = with √Σ_real from the cache"
        " (any later model against the same real set). torchmetrics: `FrechetInceptionDistance` on the features.",
        "- **KID**: both sides use the same 100 subsets of 1000 (torchmetrics' own `randperm` draws after"
        f" `torch.manual_seed({SEED})`), so the values must agree to float32 rounding.",
        "- **PRDC identical**: all four values equal to the `prdc` package's (k = 5), compared with `==`, both from"
        " P/R/D/C alone and from the fused pass.",
        "- **fused**: P/R/D/C with KID fused into its tiles (`compute_prdc_kid`, what the stage runs on a P/R/D/C"
        " extractor): the polynomial kernel is evaluated on the inner products of the P/R/D/C distance tiles and summed"
        " per subset through 0/1 membership matrices, on the same 100 subsets. **Total** = ours FID (cold) + fused,"
        " against torchmetrics FID + KID + prdc; `unfused` = ours FID + standalone KID + P/R/D/C alone.",
        "",
        "## (a) ours vs torchmetrics FID + KID and the prdc package",
        "",
        "| N, d | ours FID (cached) / KID alone / PRDC alone / PRDC+KID fused s | torchmetrics FID / KID, prdc s |"
        " speed-up: **total** (unfused; FID, KID alone, PRDC alone, KID+PRDC fused) | PRDC / bound, fused / bound |"
        " KID rel. diff: fused vs torchmetrics (standalone vs torchmetrics; fused vs standalone); FID rel. diff |"
        " PRDC identical | peak GB: ours FID+KID, PRDC; torchmetrics, prdc | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in results["a"]:
        s, r = a["summary"], a["runs"]
        o, t, p = r["ours_fid_kid"]["seconds"], r["torchmetrics_fid_kid"]["seconds"], r["ours_prdc"]["seconds"]
        lines.append(
            f"| {s['n']}, {s['d']} | {o['fid']:.2f} ({o['fid_cached_real']:.2f}) / {o['kid']:.2f} / "
            f"{p['prdc']:.2f} / {p['prdc_kid']:.2f} | {t['fid']:.2f} / {t['kid']:.2f}, "
            f"{r['prdc_package']['seconds']['prdc']:.2f} | **{s['speedup_total']:.2f}x** "
            f"({s['speedup_total_unfused']:.2f}x; {s['speedup_fid']:.2f}x, {s['speedup_kid']:.2f}x, "
            f"{s['speedup_prdc']:.2f}x, {s['speedup_kid_prdc_fused']:.2f}x) | **{s['prdc_over_bound']:.2f}**, "
            f"{s['prdc_kid_over_bound']:.2f} (bound {p['bound']:.2f} s) | {s['kid_mean_rel_diff']:.1e} "
            f"({s['kid_standalone_mean_rel_diff']:.1e}; {s['kid_fused_vs_standalone_mean_rel_diff']:.1e}); "
            f"{s['fid_rel_diff']:.1e} | {s['prdc_identical']} | {r['ours_fid_kid']['peak_rss_gb']:.2f}, "
            f"{r['ours_prdc']['peak_rss_gb']:.2f}; {r['torchmetrics_fid_kid']['peak_rss_gb']:.2f}, "
            f"{r['prdc_package']['peak_rss_gb']:.2f} | {_loads(r['ours_prdc'])} |"
        )
    if results.get("b"):
        s, r = results["b"]["summary"], results["b"]["runs"]
        o = r["ours_all"]["seconds"]
        lines += [
            "",
            "## (b) ours at N = 75k: FID + KID + P/R/D/C in one process",
            "",
            "| N, d | FID s | KID s | PRDC s | bound s (before, after) | PRDC / bound | total / bound | peak GB "
            "| load |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {s['n']}, {s['d']} | {o['fid']:.1f} | {o['kid']:.1f} | {o['prdc']:.1f} | {s['bound_s']:.1f} "
            f"({r['bound_before']['seconds']['three_products']:.1f}, "
            f"{r['bound_after']['seconds']['three_products']:.1f}) | **{s['prdc_over_bound']:.2f}** | "
            f"{s['total_over_bound']:.2f} | **{s['peak_rss_gb']:.2f}** | "
            f"{r['bound_before']['load_avg_1min'][0]:.1f}, {r['ours_all']['load_avg_1min'][0]:.1f}, "
            f"{r['bound_after']['load_avg_1min'][0]:.1f} |",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--quick", action="store_true", help="small sizes (checks the script, not the targets)")
    parser.add_argument("--parts", default="ab", help="a, b or ab")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the existing .json")
    args = parser.parse_args()
    if args.worker:
        return _worker_main(args.worker, args.data)
    stem = "fidelity_quick" if args.quick else "fidelity"
    previous = args.out / f"{stem}.json"
    if args.render:
        (args.out / f"{stem}.md").write_text(markdown(json.loads(previous.read_text())))
        return None
    if args.quick and not QUICK:
        os.environ["FIDELITY_BENCH_QUICK"] = "1"
        os.execv(sys.executable, [sys.executable, __file__, *sys.argv[1:]])
    n_a, n_b = (2000, 6000) if args.quick else (10_000, 75_000)
    results = json.loads(previous.read_text()) if previous.exists() else {"a": [], "b": None}  # parts not re-run stay
    results.update(
        machine=machine(),
        quick=args.quick,
        settings={"kid_subsets": KID_SUBSETS, "kid_subset_size": KID_SIZE, "k": K, "seed": SEED, "rounds": ROUNDS},
    )
    with tempfile.TemporaryDirectory() as tmp:
        if "a" in args.parts:
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            results["a"] = [part_a(n_a, d, Path(tmp)) for d in (768, 2048)]
            for part in results["a"]:
                part["summary"]["started"] = started
        if "b" in args.parts:
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            results["b"] = part_b(n_b, 768, Path(tmp))
            results["b"]["summary"]["started"] = started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
