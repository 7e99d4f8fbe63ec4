"""llava-report fine-tuning and generation throughput on the CPU with the tiny random LLaVA
(demo_model.write_tiny_llava: DINOv2 tower at 28 px, two-layer Llama with hidden size 64): samples/s of `finetune`
and generated tokens/s of `generate`, each timed end to end through the stage (model loading included) and as the
Trainer / generate loop alone. It measures our pipeline's overhead on a model too small to dominate; it says nothing
about LLaVA-Rad's 7B speed.

    .venv/bin/python benchmarks/llava_report_bench.py [--pairs 32] [--epochs 2]

Results: benchmarks/results/llava_report.json and llava_report.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from chexbench_common.imageio import save_grey_png
from chexbench_llava_report import finetune, generate
from chexbench_llava_report.demo_model import CORPUS, write_tiny_llava
from chexbench_schema import CHEXPERT_LABELS, write_table
from chexbench_schema.tables import prompt_id
from machine import cpu_model

RESULTS = Path(__file__).parent / "results"


def _world(tmp: Path, n: int) -> dict:
    """n TRAIN prompts with one synthetic 64 px image each; the same images serve as the real TEST set."""
    rng = np.random.default_rng(0)
    prompts, images = [], []
    for k in range(n):
        text = f"{CORPUS[k % len(CORPUS)]} Case {k}."
        name = f"{k}.png"
        save_grey_png((rng.random((64, 64)) * 255).astype(np.uint8), tmp / "img" / name)
        pid = prompt_id(text)
        prompts.append(
            {"split": "train", "prompt_id": pid, "prompt": text, "patient_id": f"p{k}", "study_id": None, "id": None}
            | {"image_path": name, "view": "PA", **dict.fromkeys(CHEXPERT_LABELS)}
        )
        digest = hashlib.sha256((tmp / "img" / name).read_bytes()).hexdigest()
        images.append(
            {"image_id": f"{pid}-0", "prompt_id": pid, "model": "m", "path": name, "seed": k, "sample_index": 0}
            | {"width": 64, "height": 64, "steps": 2, "guidance": 4.5, "dtype": "float32", "sha256": digest}
        )
    prompts_table = write_table(pd.DataFrame(prompts), tmp / "prompts.parquet", "prompts", producer="bench")
    images_table = write_table(
        pd.DataFrame(images), tmp / "images.parquet", "images", producer="bench", extra={"images_root": "img"}
    )
    return {"prompts": prompts_table, "images": images_table, "root": tmp / "img"}


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("CHEXBENCH_PROGRESS", "none")
    tmp = Path(tempfile.mkdtemp())
    world = _world(tmp, args.pairs)
    model_dir = write_tiny_llava(tmp / "tiny", seed=0)

    import transformers

    train_times = []
    original_train = transformers.Trainer.train

    def train(self, *a, **kw):  # the Trainer loop alone, without the stage's loading and writing
        out, seconds = timed(lambda: original_train(self, *a, **kw))
        train_times.append(seconds)
        return out

    transformers.Trainer.train = train
    options = finetune.Options(
        epochs=args.epochs, batch_size=args.batch_size, workers=0, save_steps=10_000, device="cpu"
    )
    request = finetune.Request(tmp / "R", "m", "r", model_dir, world["prompts"], world["images"], options=options)
    (stage, _), stage_seconds = timed(lambda: finetune.run(request))
    samples = args.pairs * args.epochs
    entry = {
        "finetune": {
            "pairs": args.pairs,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "gradient_checkpointing": options.gradient_checkpointing,
            "samples_s_stage": round(samples / stage_seconds, 2),
            "samples_s_trainer": round(samples / train_times[0], 2),
        },
        "generate": {},
    }
    original_generate = generate._generate
    generate.run(
        generate.Request(tmp / "R", "m", "warm-up", model_dir, world["prompts"], world["root"], None, 1, 8, "cpu")
    )
    for batch in (1, args.batch_size):
        loop = []

        def loop_timed(*a, loop=loop, **kw):  # the batches alone, without loading the model and tables
            out, seconds = timed(lambda: original_generate(*a, **kw))
            loop.append(seconds)
            return out

        generate._generate = loop_timed
        gen = generate.Request(
            tmp / "R", "m", "r", model_dir, world["prompts"], world["root"], None, batch, args.max_new_tokens, "cpu"
        )
        gen.force = True  # the second batch size redoes the work
        (stage, _), seconds = timed(lambda gen=gen: generate.run(gen))
        frame = pd.read_parquet(stage.dir / "predictions.parquet")
        tokens = int(frame["n_tokens"].sum())
        entry["generate"][f"batch_{batch}"] = {
            "images": len(frame),
            "max_new_tokens": args.max_new_tokens,
            "generated_tokens": tokens,
            "tokens_s_stage": round(tokens / seconds, 1),
            "tokens_s_loop": round(tokens / loop[0], 1),
        }
    generate._generate = original_generate
    entry["threads"] = torch.get_num_threads()
    entry["load_average_1min_after"] = round(os.getloadavg()[0], 2)  # other work on the machine slows every figure
    entry["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "llava_report.json").write_text(json.dumps({"cpu_tiny": entry}, indent=2) + "\n")
    ft, g1, gb = entry["finetune"], entry["generate"]["batch_1"], entry["generate"][f"batch_{args.batch_size}"]
    (RESULTS / "llava_report.md").write_text(
        "# llava-report throughput (tiny random LLaVA, CPU)\n\nWritten by `benchmarks/llava_report_bench.py`. The model"
        " is demo_model's tiny random LLaVA (DINOv2 28 px, 2-layer Llama, hidden 64): these figures measure the"
        " stage's own overhead, not LLaVA-Rad's 7B speed (no GPU run yet).\n\n"
        f"- finetune: {ft['pairs']} pairs x {ft['epochs']} epochs, batch {ft['batch_size']}, gradient checkpointing:"
        f" {ft['samples_s_trainer']} samples/s in the Trainer loop, {ft['samples_s_stage']} samples/s for the whole"
        " command (model load, table checks, writing the adapter)\n"
        f"- generate, greedy, up to {g1['max_new_tokens']} new tokens, {g1['images']} images: batch 1"
        f" {g1['tokens_s_loop']} tokens/s in the loop ({g1['tokens_s_stage']} whole command); batch {args.batch_size}"
        f" {gb['tokens_s_loop']} tokens/s ({gb['tokens_s_stage']} whole command)\n"
        f"- machine: {entry['machine']['cpu']}, {entry['machine']['cores']} cores, {entry['threads']} torch threads,"
        f" 1-minute load average {entry['load_average_1min_after']} at the end (shared machine)\n"
    )
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
