"""Embed benchmarks: decoding and forward throughput, and the real-set cache.

cpu mode: decode + preprocess images/s (single process and DataLoader workers) for three input kinds, Inception-v3
forward images/s on the CPU, and the real-set cache: time of a second run on the same real set over the first.
gpu mode: forward images/s of real-size RAD-DINO (ViT-B/14 at 518 px; random weights unless --raddino is given)
and of the FID Inception in fp32/bf16/fp16, their agreement with fp32, and an end-to-end run with decoding workers.

    .venv/bin/python benchmarks/embed_bench.py cpu
    .venv/bin/python benchmarks/embed_bench.py gpu [--raddino /models/rad-dino]

Results go to benchmarks/results/embed.json (one entry per mode, the other mode's entry kept) and embed.md
(--out: another folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from chexbench_common.imageio import load_grey
from chexbench_embed.engine import ImageDataset, Options, collate
from chexbench_embed.extractors import build_spec, load_encoder
from chexbench_embed.inception import TRANSFORM as INCEPTION
from chexbench_embed.inputs import Source
from chexbench_embed.run import Request, run
from chexbench_schema import CHEXPERT_LABELS, write_table
from machine import cpu_model
from PIL import Image

RESULTS = Path(__file__).parent / "results"
# (height, width, bits, suffix): MIMIC-CXR-JPG originals, and typical generator outputs
KINDS = {
    "mimic-jpeg-3056x2544": (3056, 2544, 8, "jpg"),
    "png8-512": (512, 512, 8, "png"),
    "png16-1024": (1024, 1024, 16, "png"),
}
RADDINO_PROCESSOR = {
    "size": {"shortest_edge": 518},
    "crop_size": {"height": 518, "width": 518},
    "image_mean": [0.5307] * 3,
    "image_std": [0.2583] * 3,
}


def make_images(root: Path, kind: str, count: int) -> list[Path]:
    """CXR-like images: smooth anatomy-scale structure plus sensor noise (noise sets the JPEG decode cost)."""
    h, w, bits, suffix = KINDS[kind]
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        grey = 0.5 + 0.25 * np.sin(x / (w / 7) + i) * np.cos(y / (h / 5)) + 0.03 * rng.standard_normal((h, w))
        grey = np.clip(grey, 0, 1)
        path = root / f"{kind}-{i}.{suffix}"
        image = np.round(grey * 65535).astype(np.uint16) if bits == 16 else np.round(grey * 255).astype(np.uint8)
        Image.fromarray(image).save(path, quality=95) if suffix == "jpg" else Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def as_source(paths: list[Path], kind: str = "real") -> Source:
    ids = [f"p{i:016x}" for i in range(len(paths))]
    return Source(kind, Path("bench"), ids, ids, list(paths), [f"row {i + 1}" for i in range(len(paths))])


def raddino_transform():
    from chexbench_embed.dino import transform_from_processor
    from transformers import BitImageProcessorPil

    return transform_from_processor(BitImageProcessorPil(**RADDINO_PROCESSOR), "rad-dino processor")


def loader_rate(paths: list[Path], transforms: dict, workers: int, batch: int = 8) -> float:
    """Images/s through the stage's own Dataset + DataLoader (decode once, every transform)."""
    needs = {name: np.ones(len(paths), bool) for name in transforms}
    loader = torch.utils.data.DataLoader(
        ImageDataset(as_source(paths), transforms, needs), batch_size=batch, num_workers=workers, collate_fn=collate
    )
    start = time.perf_counter()
    for _groups, errors, _count in loader:
        assert not errors, errors
    return len(paths) / (time.perf_counter() - start)


def decode_rates(root: Path, count: int, workers: int) -> dict:
    rates = {}
    raddino = raddino_transform()
    for kind in KINDS:
        paths = make_images(root / kind, kind, count)
        start = time.perf_counter()
        for path in paths:
            load_grey(path)
        decode = len(paths) / (time.perf_counter() - start)
        rates[kind] = {
            "decode_only_1proc": decode,
            "inception_1proc": loader_rate(paths, {"inception": INCEPTION}, 0),
            "raddino_1proc": loader_rate(paths, {"raddino": raddino}, 0),
            "both_1proc": loader_rate(paths, {"inception": INCEPTION, "raddino": raddino}, 0),
            f"both_{workers}workers": loader_rate(paths, {"inception": INCEPTION, "raddino": raddino}, workers),
        }
        print(kind, {k: round(v, 1) for k, v in rates[kind].items()}, flush=True)
    return rates


def forward_rate(encoder, shape: tuple, device, precision: str, batch: int, repeats: int) -> float:
    """Images/s of the encoder alone on (batch, 1, H, W) inputs, after one warm-up batch."""
    x = torch.rand(batch, 1, *shape, device=device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        encoder(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            encoder(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def write_prompts(path: Path, root: Path, paths: list[Path]) -> Path:
    rows = [
        {
            "split": "bench",
            "prompt_id": f"p{i:016x}",
            "prompt": f"finding {i}",
            "patient_id": None,
            "study_id": None,
            "id": None,
            "image_path": p.relative_to(root).as_posix(),
            "view": "PA",
            **{label: None for label in CHEXPERT_LABELS},
        }
        for i, p in enumerate(paths)
    ]
    return write_table(pd.DataFrame(rows), path, "prompts", producer="embed_bench")


def cache_ratio(root: Path, count: int, workers: int) -> dict:
    """First and second run on the same real set (inception), in-process and as a fresh `chexbench-embed` process."""
    paths = make_images(root / "real", "mimic-jpeg-3056x2544", count)
    table = write_prompts(root / "prompts.parquet", root / "real", paths)
    out: dict = {"images": count, "kind": "mimic-jpeg-3056x2544", "extractor": "inception"}
    for label, cache in (("in_process", root / "cache-a"), ("cli", root / "cache-b")):
        times = []
        for run_id in ("first", "second"):
            start = time.perf_counter()
            if label == "in_process":
                request = Request(
                    results=root / "Results",
                    model="bench",
                    run_id=f"{label}-{run_id}",
                    extractors=["inception"],
                    prompts=(table, root / "real"),
                    cache_dir=cache,
                    options=Options(batch_size=8, num_workers=workers),
                    device="cpu",
                )
                run(request)
            else:
                cli = Path(sys.executable).with_name("chexbench-embed")
                subprocess.run(
                    [
                        str(cli),
                        "run",
                        "--results",
                        str(root / "Results"),
                        "--model",
                        "bench",
                        "--run-id",
                        f"{label}-{run_id}",
                        "--prompts",
                        str(table),
                        "--real-root",
                        str(root / "real"),
                        "--extractor",
                        "inception",
                        "--cache-dir",
                        str(cache),
                        "--device",
                        "cpu",
                        "--num-workers",
                        str(workers),
                    ],
                    check=True,
                    capture_output=True,
                )
            times.append(time.perf_counter() - start)
        out[label] = {"first_s": times[0], "second_s": times[1], "ratio": times[1] / times[0]}
        print("cache", label, {k: round(v, 3) for k, v in out[label].items()}, flush=True)
    return out


def cpu_mode(args) -> dict:
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    workers = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        decode = decode_rates(root / "decode", args.images, workers)
        encoder = load_encoder(build_spec("inception", None), torch.device("cpu"))
        inception = forward_rate(encoder, (299, 299), torch.device("cpu"), "fp32", 8, 2)
        print("inception cpu img/s", round(inception, 2), flush=True)
        cache = cache_ratio(root / "cache", args.cache_images, workers)
    return {
        "decode_preprocess_img_per_s": decode,
        "inception_forward_cpu_img_per_s": inception,
        "cache_second_run": cache,
        "images_per_kind": args.images,
    }


def real_size_raddino(folder: Path) -> Path:
    """A random-weight folder with microsoft/rad-dino's architecture and processor (speed does not need weights).

    layerscale 1.0 instead of rad-dino's 1e-5 init: with 1e-5 the random blocks barely touch the CLS token, and the
    bf16/fp16-against-fp32 comparison below would compare near-constant vectors.
    """
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = Dinov2Config(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        patch_size=14,
        image_size=518,
        layerscale_value=1.0,
    )
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessorPil(**RADDINO_PROCESSOR).save_pretrained(folder)
    return folder


def gpu_mode(args) -> dict:
    device = torch.device(args.device)
    torch.backends.cuda.matmul.fp32_precision = "ieee"  # as the stage does: fp32 is IEEE fp32, not TF32
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device} (smoke test, not a GPU)"
    out: dict = {"gpu": gpu, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = args.raddino or real_size_raddino(root / "raddino")
        out["raddino_weights"] = "given" if args.raddino else "random (real-size architecture)"
        specs = {"raddino": build_spec("raddino", Path(folder)), "inception": build_spec("inception", None)}
        for name, spec in specs.items():
            encoder = load_encoder(spec, device)
            shape = (spec.transform.height, spec.transform.width)
            out[f"{name}_forward_img_per_s"] = {
                p: forward_rate(encoder, shape, device, p, args.batch_size, args.repeats)
                for p in ("fp32", "bf16", "fp16")
            }
            x = torch.rand(args.batch_size, 1, *shape, generator=torch.Generator().manual_seed(0)).to(device)
            with torch.inference_mode():
                ref = encoder(x).float()
                for p, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
                    with torch.autocast(device.type, dtype=dtype):
                        low = encoder(x).float()
                    cos = torch.nn.functional.cosine_similarity(low, ref).min().item()
                    out.setdefault(f"{name}_min_cosine_vs_fp32", {})[p] = cos
            print(name, out[f"{name}_forward_img_per_s"], out[f"{name}_min_cosine_vs_fp32"], flush=True)
            del encoder
        workers = len(os.sched_getaffinity(0))
        paths = make_images(root / "e2e", "mimic-jpeg-3056x2544", args.e2e_images)
        table = write_prompts(root / "prompts.parquet", root / "e2e", paths)
        start = time.perf_counter()
        run(
            Request(
                results=root / "Results",
                model="bench",
                run_id="gpu",
                device=args.device,
                cache_dir=None,
                extractors=["inception", f"raddino={folder}"],
                prompts=(table, root / "e2e"),
                options=Options(batch_size=args.batch_size, num_workers=workers, precision="bf16"),
            )
        )
        elapsed = time.perf_counter() - start
        out["end_to_end"] = {
            "images": len(paths),
            "kind": "mimic-jpeg-3056x2544",
            "workers": workers,
            "precision": "bf16",
            "extractors": "inception+raddino",
            "seconds": elapsed,
            "img_per_s": len(paths) / elapsed,
        }
        print("end to end", out["end_to_end"], flush=True)
    return out


def environment() -> dict:
    cpu = cpu_model()
    return {
        "cpu": cpu,
        "cpus_available": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def markdown(results: dict) -> str:
    lines = ["# embed benchmarks", "", "Produced by `benchmarks/embed_bench.py`; raw numbers in `embed.json`.", ""]
    cpu = results.get("cpu")
    if cpu:
        env = cpu["environment"]
        lines += [
            f"## CPU ({env['cpu']}, {env['cpus_available']} CPUs, load {env['load_average_at_start'][0]:.1f} "
            f"at start, torch {env['torch']}, {env['date']})",
            "",
            "Decode + preprocess, images/s (`1proc`: one process; `Nworkers`: DataLoader workers; `both` "
            "decodes once for Inception 299 px and RAD-DINO 518 px):",
            "",
        ]
        rates = cpu["decode_preprocess_img_per_s"]
        columns = list(next(iter(rates.values())))
        lines += ["| input | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {kind} | " + " | ".join(f"{r[c]:.1f}" for c in columns) + " |" for kind, r in rates.items()]
        cache = cpu["cache_second_run"]
        lines += [
            "",
            f"Inception-v3 forward on the CPU (batch 8, fp32): {cpu['inception_forward_cpu_img_per_s']:.2f} images/s.",
            "",
            f"Real-set cache, {cache['images']} × {cache['kind']} with {cache['extractor']}: second run / first "
            "run time:",
            "",
            "| measured | first run s | second run s | ratio |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {cache[k]['first_s']:.2f} | {cache[k]['second_s']:.2f} | {cache[k]['ratio']:.3f} |"
            for k in ("in_process", "cli")
        ]
    gpu = results.get("gpu")
    lines += ["", "## GPU", ""]
    if gpu:
        lines += [
            f"{gpu['gpu']}, batch {gpu['batch_size']}, RAD-DINO weights: {gpu['raddino_weights']}.",
            "",
            "| extractor | fp32 img/s | bf16 img/s | fp16 img/s | min cosine bf16 / fp16 vs fp32 |",
            "|---|---|---|---|---|",
        ]
        for name in ("raddino", "inception"):
            r, c = gpu[f"{name}_forward_img_per_s"], gpu[f"{name}_min_cosine_vs_fp32"]
            lines.append(
                f"| {name} | {r['fp32']:.3g} | {r['bf16']:.3g} | {r['fp16']:.3g} | {c['bf16']:.5f} / {c['fp16']:.5f} |"
            )
        e2e = gpu["end_to_end"]
        lines += [
            "",
            f"End to end ({e2e['images']} × {e2e['kind']}, {e2e['extractors']}, {e2e['precision']}, "
            f"{e2e['workers']} workers): {e2e['img_per_s']:.3g} images/s.",
        ]
    else:
        lines.append("Not run yet: needs a CUDA GPU (`embed_bench.py gpu`).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["cpu", "gpu"])
    parser.add_argument("--images", type=int, default=12, help="cpu: images per input kind")
    parser.add_argument("--cache-images", type=int, default=12, help="cpu: real images for the cache runs")
    parser.add_argument("--device", default="cuda", help="gpu: the device (cpu only to smoke-test this script)")
    parser.add_argument("--raddino", type=Path, help="gpu: a microsoft/rad-dino folder (default: random weights)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10, help="gpu: timed batches per precision")
    parser.add_argument("--e2e-images", type=int, default=512, help="gpu: images for the end-to-end run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Folder for embed.json and embed.md.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CHEXBENCH_PROGRESS", "none")
    env = environment()
    result = (cpu_mode if args.mode == "cpu" else gpu_mode)(args) | {"environment": env}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "embed.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[args.mode] = result
    path.write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "embed.md").write_text(markdown(results))
    print(f"wrote {path} and {args.out / 'embed.md'}")


if __name__ == "__main__":
    main()
