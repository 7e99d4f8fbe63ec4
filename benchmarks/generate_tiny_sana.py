"""Generate benchmark on the CPU: images/s of the tiny random-weight Sana pipeline at batch 1, 4 and 16.

Two figures per batch size, each the median of --repeats runs over --images images (64x64, 2 steps, fp32):
- pipeline: the pipeline calls alone (one generator per image, padded last batch), as chexbench-generate makes them;
- loop: chexbench-generate's whole generation loop (pipeline + PNG write + sha256 + ledger fsync), from the shard
  manifest, i.e. what a run achieves after loading.
The tiny model only measures overheads (tokenizer, scheduler, per-image generators, I/O), not real-model compute.

    .venv/bin/python benchmarks/generate_tiny_sana.py [--images 64] [--repeats 3]

Results: benchmarks/results/generate_tiny_sana.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from chexbench_generate.loading import load_pipeline, locate
from chexbench_generate.plan import plan_items
from chexbench_generate.registry import REGISTRY
from chexbench_generate.runner import Job, generate_batch, run_shard
from chexbench_generate.settings import resolve
from chexbench_generate.tiny import CORPUS, build_tiny_pipeline, tiny_settings
from chexbench_schema import CHEXPERT_LABELS, read_table, write_table
from machine import cpu_model

RESULTS = Path(__file__).parent / "results"


def make_prompts(path: Path, n: int) -> Path:
    import hashlib

    import pandas as pd

    texts = [f"{CORPUS[i % len(CORPUS)]} case {i}" for i in range(n)]
    frame = pd.DataFrame(
        {"split": "bench", "prompt_id": ["p" + hashlib.sha256(t.encode()).hexdigest()[:16] for t in texts]}
    ).assign(prompt=texts)
    for column in ("patient_id", "study_id", "id", "image_path", "view", *CHEXPERT_LABELS):
        frame[column] = None
    return write_table(frame, path, "prompts", producer="generate_tiny_sana benchmark")


def pipeline_rate(pipe, items, settings) -> float:
    generate_batch(pipe, items[: settings.batch_size], settings)  # warm-up
    start = time.perf_counter()
    for i in range(0, len(items), settings.batch_size):
        generate_batch(pipe, items[i : i + settings.batch_size], settings)
    return len(items) / (time.perf_counter() - start)


def measure(spec, files, prompts, items, batch: int, root: Path, repeats: int, tag: str) -> dict:
    settings = resolve(spec, tiny_settings("sana"), {"batch_size": batch})
    pipe = load_pipeline(files, settings.dtype, "cpu")
    pipeline = [pipeline_rate(pipe, items, settings) for _ in range(repeats)]
    loop = []
    for r in range(repeats):
        job = Job(
            files=files,
            settings=settings,
            model_name="sana",
            prompts=prompts,
            results=root / "R",
            run_id=f"{tag}-r{r}",
            device="cpu",
        )
        loop.append(run_shard(job)["execution"]["images_per_second"])
    result = {
        "pipeline_img_per_s": statistics.median(pipeline),
        "loop_img_per_s": statistics.median(loop),
        "pipeline_runs": pipeline,
        "loop_runs": loop,
    }
    print(f"{tag}: pipeline {result['pipeline_img_per_s']:.1f} img/s, loop {result['loop_img_per_s']:.1f} img/s")
    return result


def machine() -> dict:
    cpu = cpu_model()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, torch.get_num_threads()],
        help="torch thread counts to measure [default: 1 and torch's default]",
    )
    args = parser.parse_args()
    spec = REGISTRY["sana"]
    info = machine()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = locate(spec, build_tiny_pipeline("sana", root / "tiny-sana"))
        prompts = make_prompts(root / "prompts.parquet", args.images)
        items = plan_items(read_table(prompts, "prompts"), 1, 42)
        for threads in dict.fromkeys(args.threads):
            torch.set_num_threads(threads)
            for batch in args.batch_sizes:
                results.setdefault(str(threads), {})[str(batch)] = measure(
                    spec, files, prompts, items, batch, root, args.repeats, f"t{threads}-b{batch}"
                )
    info["load_average_end"] = round(os.getloadavg()[0], 2)
    report = {
        "machine": info,
        "settings": {"images": args.images, "repeats": args.repeats, **tiny_settings("sana")},
        "threads": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generate_tiny_sana.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "generate_tiny_sana.md").write_text(markdown(report))


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        "# generate: tiny Sana on the CPU",
        "",
        "Produced by `benchmarks/generate_tiny_sana.py`; raw numbers in `generate_tiny_sana.json`.",
        "",
        f"{m['cpu']}, {m['cpus']} CPUs ({m['torch_threads']} torch threads by default), load "
        f"{m['load_average_start']} at start and {m['load_average_end']} at the end (a shared machine: other jobs "
        f"compete for the cores, which hurts most with 2 threads), torch {m['torch']}, {m['date']}.",
        f"Tiny random-weight Sana, {s['width']}x{s['height']} px, {s['steps']} steps, {s['dtype']}, {s['images']} "
        f"images, median of {s['repeats']} runs. `pipeline`: the pipeline calls only; `loop`: chexbench-generate's "
        "generation loop (pipeline + PNG + sha256 + ledger).",
        "",
        "| torch threads | batch | pipeline img/s | loop img/s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {t} | {b} | {r['pipeline_img_per_s']:.1f} | {r['loop_img_per_s']:.1f} |"
        for t, by_batch in report["threads"].items()
        for b, r in by_batch.items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
