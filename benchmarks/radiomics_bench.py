"""Radiomics (FRD) benchmarks: feature extraction throughput and its scaling over worker processes.

cpu mode: images/s of `RadiomicsTransform.apply` (resize + pyradiomics, decoding excluded) on 512 px and on
MIMIC-sized 2544×3056 grey images, in 1 and in N worker processes (scaling efficiency = rate_N / (N · rate_1)), and
the hours this gives for 5k and 75k images on a 32-core node.
crosscheck mode (needs `pip install frd-score==1.0.1`, kept out of requirements/dev.txt): on 20 + 20 512 px PNGs,
(a) our FRD against frd-score's own z-score + Fréchet code on the same features, (b) our features against frd-score's
v1 extraction of the same files, feature by feature, (c) both end-to-end FRD values.

    .venv/bin/python benchmarks/radiomics_bench.py cpu
    PYTHONPATH=tools/embed/src:tools/fidelity/src <frd-score venv>/bin/python benchmarks/radiomics_bench.py crosscheck

Results go to benchmarks/results/radiomics.json (one entry per mode, the other mode's entry kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from pathlib import Path

import numpy as np
from chexbench_embed.radiomics import RadiomicsTransform
from chexbench_fidelity.frd import frechet_radiomics_distance, zscore_with_real
from machine import cpu_model
from PIL import Image

RESULTS = Path(__file__).parent / "results"
KINDS = {"512": (512, 512), "mimic-2544x3056": (3056, 2544)}
TRANSFORM = RadiomicsTransform()


def picture(seed: int, h: int, w: int, family: int = 0) -> np.ndarray:
    """CXR-like grey [0, 1]: anatomy-scale structure plus noise; `family` changes the texture (a 'model')."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    freq = 7 + 3 * family
    grey = (
        0.5
        + 0.25 * np.sin(x / (w / freq) + seed) * np.cos(y / (h / 5))
        + (0.03 + 0.02 * family) * (rng.standard_normal((h, w), dtype=np.float32))
    )
    return np.clip(grey, 0, 1).astype(np.float32)


IMAGES: list[np.ndarray] = []  # set before the pool forks, so workers index it instead of unpickling images


def _warm():
    TRANSFORM.feature_names()  # builds the extractor in the worker


def _apply(index: int) -> tuple[bool, float]:
    """(finite, CPU seconds of this worker for this image)."""
    start = time.process_time()
    vector = TRANSFORM.apply(IMAGES[index])
    return bool(np.isfinite(vector).all()), time.process_time() - start


def rate(images: list[np.ndarray], workers: int) -> tuple[float, float]:
    """(images/s, CPU s per image in the workers) with `workers` forked processes, warmed up before the clock."""
    IMAGES[:] = images
    with ProcessPoolExecutor(workers, initializer=_warm) as pool:
        list(pool.map(_apply, range(workers)))
        start = time.perf_counter()
        out = list(pool.map(_apply, range(len(images))))
        elapsed = time.perf_counter() - start
    assert all(finite for finite, _ in out)
    return len(images) / elapsed, sum(cpu for _, cpu in out) / len(images)


def cpu_mode(args) -> dict:
    workers = len(os.sched_getaffinity(0))
    out: dict = {"n_features": len(TRANSFORM.feature_names()), "recipe": TRANSFORM.describe(), "rates": {}}
    for kind, (h, w) in KINDS.items():
        images = [picture(i, h, w) for i in range(args.images)]
        one, cpu_one = rate(images, 1)
        many, cpu_many = rate(images, workers)
        out["rates"][kind] = {
            "images": len(images),
            "img_per_s_1proc": one,
            f"img_per_s_{workers}proc": many,
            "scaling_efficiency": many / (workers * one),
            "cpu_s_per_image_1proc": cpu_one,
            f"cpu_s_per_image_{workers}proc": cpu_many,
            # share of `workers` cores the workers actually got: below 1 means other processes held the cores
            f"cpu_share_{workers}proc": many * cpu_many / workers,
        }
        print(kind, {k: round(v, 3) for k, v in out["rates"][kind].items()}, flush=True)
    per_core = min(1 / r["cpu_s_per_image_1proc"] for r in out["rates"].values())
    out["node_hours_32_cores"] = {
        "assumes": "the slower per-core rate (1 / CPU s per image, 1 process) of the two kinds, 32 worker processes, "
        "linear scaling, decoding excluded",
        "per_core_img_per_s": per_core,
        **{f"{n}_images": n / (32 * per_core) / 3600 for n in (5000, 75000)},
    }
    print(out["node_hours_32_cores"], flush=True)
    return out


def crosscheck_mode(args) -> dict:
    import frd_score.frd as ref

    n = args.crosscheck_images
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for family, name in ((0, "real"), (1, "synthetic")):
            folder = Path(tmp) / name
            folder.mkdir()
            for i in range(n):
                grey = picture(100 * family + i, 512, 512, family)
                Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
            folders[name] = sorted(folder.glob("*.png"))
        # ours, on the same 8-bit files
        ours = {
            k: np.stack([TRANSFORM.apply(np.asarray(Image.open(p), np.float32) / 255) for p in v])
            for k, v in folders.items()
        }
        value, used, note = frechet_radiomics_distance(ours["real"], ours["synthetic"])
        # (a) frd-score's normalisation and Fréchet distance on our features
        zr, zs, _keep, _ = zscore_with_real(ours["real"], ours["synthetic"])
        real64, synth64 = ours["real"].astype(np.float64)[:, _keep], ours["synthetic"].astype(np.float64)[:, _keep]
        kw = {"new_min": 0, "new_max": 1, "base_distribution": real64, "replace_nan": False, "handle_std_zero": False}
        nr, ns = ref.z_score_normalize(real64, **kw), ref.z_score_normalize(synth64, **kw)
        fd_ref = ref.calculate_frechet_distance(
            nr.mean(0), np.cov(nr, rowvar=False), ns.mean(0), np.cov(ns, rowvar=False)
        )
        # (b) frd-score's v1 extraction of one file, feature by feature
        extractor = ref.get_feature_extractor(frd_version="v1")
        _, theirs, _ = ref.process_image_mask_pair((folders["real"][0], None), feature_extractor=extractor)
        theirs = {
            k if k.startswith(("diagnostics", "wavelet", "log")) else f"original_{k}": v for k, v in theirs.items()
        }
        names = TRANSFORM.feature_names()
        mine = dict(zip(names, ours["real"][0].tolist(), strict=True))
        shared = sorted(set(mine) & set(theirs))
        rel = np.array([abs(mine[k] - theirs[k]) / max(abs(theirs[k]), 1e-12) for k in shared])
        # (c) end to end
        end = ref.compute_frd([str(folders["real"][0].parent), str(folders["synthetic"][0].parent)], num_workers=2)
    return {
        "images_per_set": n,
        "frd_ours": value,
        "features_used": used,
        "note": note,
        "a_frd_score_math_on_our_features": float(np.log(fd_ref)),
        "a_abs_difference": abs(float(np.log(fd_ref)) - value),
        "b_shared_features": len(shared),
        "b_our_features": len(names),
        "b_their_features": len(theirs),
        "b_only_theirs_examples": sorted(set(theirs) - set(mine))[:8],
        "b_median_rel_difference": float(np.median(rel)),
        "b_max_rel_difference": float(rel.max()),
        "b_share_within_1e-3": float((rel < 1e-3).mean()),
        "c_frd_score_v1_end_to_end": float(end),
        "c_why_different": "frd-score v1 makes each 2-D image a (1, H, W) volume, so pyradiomics skips LoG (no log-* "
        "features, see b_their_features); it adds 13 numeric diagnostics as features, sets the mask's corner to 0, "
        "drops images with any NaN feature and computes in float32",
        "frd_score_version": version("frd-score"),
    }


def environment() -> dict:
    return {
        "cpu": cpu_model(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "pyradiomics": version("pyradiomics-bhklab"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["cpu", "crosscheck"])
    parser.add_argument("--images", type=int, default=16, help="cpu: images per kind")
    parser.add_argument("--crosscheck-images", type=int, default=20, help="crosscheck: images per set")
    args = parser.parse_args()
    env = environment()
    result = (cpu_mode if args.mode == "cpu" else crosscheck_mode)(args) | {"environment": env}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "radiomics.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[args.mode] = result
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
