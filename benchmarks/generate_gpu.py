"""Generate benchmark on a GPU: the real Sana and PixArt-Σ settings (512 px, 20 steps, guidance 4.5)
in fp16 and bf16 over batch sizes, through chexbench-generate's own loading and batch call.

Per (model, dtype, batch size): images/s over --images images after one warm-up batch, peak GPU memory, and the
number of degenerate images (near-constant: what fp16 overflow produces). Per model: the mean absolute difference
in grey levels between the fp16 and bf16 images of the same seeds. An OOM is recorded and larger batches skipped.

    .venv/bin/python benchmarks/generate_gpu.py --sana /models/sana-mimic --pixart /models/pixart-sigma-mimic
    .venv/bin/python benchmarks/generate_gpu.py --tiny --device cpu   # smoke test with tiny random pipelines

Results: benchmarks/results/generate_gpu.json and .md (only with real models; --out to put them elsewhere).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from chexbench_common.rundir import gpu_description
from chexbench_generate.loading import load_pipeline, locate
from chexbench_generate.plan import Item, image_seed
from chexbench_generate.registry import REGISTRY
from chexbench_generate.runner import generate_batch
from chexbench_generate.settings import resolve
from chexbench_generate.tiny import build_tiny_pipeline, tiny_settings

RESULTS = Path(__file__).parent / "results"
# Findings-style prompts of typical MIMIC-CXR length (written for this benchmark).
PROMPTS = (
    "PA and lateral views of the chest. The lungs are clear without focal consolidation, pleural effusion or "
    "pneumothorax. The cardiomediastinal silhouette is within normal limits. No acute osseous abnormality.",
    "Portable AP chest radiograph. Endotracheal tube terminates 4 cm above the carina. Right internal jugular "
    "central venous catheter tip in the mid SVC. Bibasilar opacities likely atelectasis. Small left effusion.",
    "Moderate cardiomegaly with mild pulmonary vascular congestion and interstitial edema. Small bilateral pleural "
    "effusions with adjacent compressive atelectasis. No pneumothorax.",
    "Right lower lobe consolidation concerning for pneumonia in the appropriate clinical setting. Left lung clear. "
    "Heart size normal. No pleural effusion.",
    "Large right pneumothorax with leftward mediastinal shift. Left lung is clear. Chest tube recommended.",
    "Low lung volumes with crowding of the bronchovascular markings. Patchy left basilar opacity may reflect "
    "atelectasis, aspiration or early pneumonia. Stable mild cardiomegaly. Sternotomy wires intact.",
)


def items(n: int) -> list[Item]:
    return [Item(f"b{i}-0", f"b{i}", PROMPTS[i % len(PROMPTS)], 0, image_seed(42, f"b{i}", 0)) for i in range(n)]


def run_config(pipe, settings, work: list[Item], device: torch.device) -> dict:
    """Images/s, peak memory and degenerate count for one (dtype, batch size); {'oom': True} on out-of-memory."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        generate_batch(pipe, work[: settings.batch_size], settings)  # warm-up
        sync()
        start = time.perf_counter()
        images = []
        for i in range(0, len(work), settings.batch_size):
            images += generate_batch(pipe, work[i : i + settings.batch_size], settings)
        sync()
        seconds = time.perf_counter() - start
    except Exception as exc:  # chexbench's OutOfMemoryError, or the pipeline's own
        if "out of memory" not in str(exc).lower():
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"oom": True}
    grey = [np.asarray(im.convert("L"), dtype=np.float32) for im in images]
    return {
        "img_per_s": len(work) / seconds,
        "s_per_batch": seconds / math.ceil(len(work) / settings.batch_size),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
        "degenerate_images": int(sum(g.std() < 1.0 for g in grey)),
        "first_images": grey[:4],
    }


def bench_model(name: str, path: Path, args, device: torch.device, tiny: bool) -> dict:
    spec = REGISTRY[name]
    files = locate(spec, path)
    base = tiny_settings(spec.family) if tiny else {}
    out = {"model_path": str(path), "settings": None, "dtypes": {}}
    first: dict[str, np.ndarray] = {}
    for dtype in args.dtypes:
        pipe = load_pipeline(files, dtype, device)
        rows = {}
        for batch in sorted(args.batch_sizes):
            settings = resolve(spec, base, {"dtype": dtype, "batch_size": batch})
            out["settings"] = {k: v for k, v in settings.pixel_settings().items() if k != "dtype"}
            result = run_config(pipe, settings, items(args.images), device)
            if "first_images" in result:
                first.setdefault(dtype, np.stack(result.pop("first_images")))
            rows[str(batch)] = result
            print(f"{name} {dtype} batch {batch}: {result}")
            if result.get("oom"):
                break
        out["dtypes"][dtype] = rows
        del pipe
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if {"float16", "bfloat16"} <= set(first):
        out["fp16_vs_bf16_mean_abs_grey"] = float(np.abs(first["float16"] - first["bfloat16"]).mean())
    return out


def machine(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["nvidia_smi"] = gpu_description()
    else:
        info["gpu"] = f"none (device {device})"
    import diffusers

    info["diffusers"] = diffusers.__version__
    return info


def markdown(report: dict) -> str:
    lines = [
        "# generate: Sana and PixArt-Σ on a GPU",
        "",
        "Produced by `benchmarks/generate_gpu.py`; raw numbers in `generate_gpu.json`.",
        "",
        f"Machine: {report['machine']['gpu']}, torch {report['machine']['torch']}, diffusers "
        f"{report['machine']['diffusers']}, {report['machine']['date']}. {report['images']} images per "
        "configuration after one warm-up batch; degenerate = near-constant images (fp16 overflow).",
        "",
    ]
    for name, model in report["models"].items():
        s = model["settings"]
        lines += [
            f"## {name}: {s['width']}x{s['height']}, {s['steps']} steps, guidance {s['guidance']}",
            "",
            "| dtype | batch | images/s | s/batch | peak GiB | degenerate |",
            "|---|---|---|---|---|---|",
        ]
        for dtype, rows in model["dtypes"].items():
            for batch, r in rows.items():
                if r.get("oom"):
                    lines.append(f"| {dtype} | {batch} | OOM | | | |")
                else:
                    peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
                    lines.append(
                        f"| {dtype} | {batch} | {r['img_per_s']:.2f} | {r['s_per_batch']:.2f} | {peak} | "
                        f"{r['degenerate_images']} |"
                    )
        if "fp16_vs_bf16_mean_abs_grey" in model:
            lines += [
                "",
                f"fp16 vs bf16, same seeds: mean absolute difference "
                f"{model['fp16_vs_bf16_mean_abs_grey']:.2f} grey levels (of 255).",
            ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sana", type=Path, help="Local Sana pipeline folder (diffusers layout).")
    parser.add_argument("--pixart", type=Path, help="Local PixArt-Σ pipeline folder (diffusers layout).")
    parser.add_argument("--tiny", action="store_true", help="Use tiny random pipelines (smoke test of this script).")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--dtypes", nargs="+", default=["float16", "bfloat16"])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, help="Folder for the results [default: benchmarks/results, not --tiny].")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"sana": args.sana, "pixart_sigma": args.pixart}
        if args.tiny:
            paths = {name: build_tiny_pipeline(REGISTRY[name].family, Path(tmp) / name) for name in paths}
        if not any(paths.values()):
            parser.error("give --sana and/or --pixart (or --tiny)")
        report = {
            "machine": machine(device),
            "images": args.images,
            "tiny": args.tiny,
            "models": {name: bench_model(name, path, args, device, args.tiny) for name, path in paths.items() if path},
        }
    out = args.out or (None if args.tiny else RESULTS)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "generate_gpu.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "generate_gpu.md").write_text(markdown(report))
        print(f"wrote {out / 'generate_gpu.md'}")
    else:
        print(markdown(report))


if __name__ == "__main__":
    main()
