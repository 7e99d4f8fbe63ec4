"""Alignment throughput: CheXGenBench's per-image loop against our batched scorer, same device, same
full-size random-weight BioViL-T (ResNet-50 image tower at 448 px, BERT-base text tower), same 512 px PNGs.

The loop, as the original: per image decode + preprocess, image forward at batch 1, its prompt tokenised and
encoded again, the score rounded. Ours: decoding in DataLoader workers overlapped with the forward passes, batches
of images, each distinct prompt encoded once.

    .venv/bin/python benchmarks/align_bench.py [--images 32 --batch 16 --workers 2]

Results: benchmarks/results/align.json (one entry per device) and align.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from chexbench_align.biovil import ImageTower, TextTower
from chexbench_align.engine import embed_images, embed_texts
from chexbench_align.preprocess import biovil_input, load_uint8
from chexbench_align.tiny import build_tiny_text
from chexbench_common.imageio import save_grey_png
from machine import cpu_model

RESULTS = Path(__file__).parent / "results"
WORDS = ["no", "acute", "cardiopulmonary", "process", "small", "left", "pleural", "effusion", "heart", "size", "normal"]


class FullSize:
    """Our scorer's interface around full-size random towers (no weights files needed)."""

    def __init__(self, device: torch.device, folder: Path):
        from transformers import BertConfig, BertTokenizer

        build_tiny_text(folder, hidden=768, max_positions=512)
        self.device, self.preprocessing, self.max_tokens = device, "biovil", 512
        self.image_model = ImageTower().to(device).eval()
        self.text = TextTower(BertConfig(vocab_size=len((folder / "vocab.txt").read_text().split()))).to(device).eval()
        self.tokenizer = BertTokenizer.from_pretrained(str(folder))

    @staticmethod
    def image_input(path):
        return biovil_input(load_uint8(path))

    def encode_images(self, batch):
        with torch.inference_mode():
            return self.image_model(batch.to(self.device))

    def encode_texts(self, texts):
        enc = self.tokenizer(texts, padding="longest", return_tensors="pt").to(self.device)
        with torch.inference_mode():
            return self.text(enc["input_ids"], enc["attention_mask"]), np.zeros(len(texts), dtype=bool)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(device: torch.device, n: int, batch: int, workers: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        files.append(save_grey_png((rng.uniform(0, 1, (512, 512)) * 255).astype(np.uint8), tmp / f"{i}.png"))
    prompts = [" ".join(rng.choice(WORDS, 30)) for _ in range(n)]
    scorer = FullSize(device, tmp / "text")
    scorer.encode_images(torch.rand(1, 3, 448, 448))  # warm-up
    sync(device)
    start = time.perf_counter()
    loop = []
    for file, prompt in zip(files, prompts, strict=True):
        image = scorer.encode_images(biovil_input(load_uint8(file))[None])
        text, _ = scorer.encode_texts([prompt])
        loop.append(round(float((image * text).sum()), 3))
    sync(device)
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    vectors = embed_images(scorer, files, "benchmark", batch, workers)
    texts, _ = embed_texts(scorer, prompts, batch)
    ours = [float(v @ texts[p]) for v, p in zip(vectors, prompts, strict=True)]
    sync(device)
    ours_s = time.perf_counter() - start
    assert np.allclose(np.round(ours, 3), loop, atol=1.5e-3)
    return {
        "device": device.type,
        "images": n,
        "batch": batch,
        "workers": workers,
        "loop_s": round(loop_s, 2),
        "batched_s": round(ours_s, 2),
        "loop_img_s": round(n / loop_s, 2),
        "batched_img_s": round(n / ours_s, 2),
        "speedup": round(loop_s / ours_s, 2),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    path = RESULTS / "align.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        n = args.images * (8 if device.type == "cuda" else 1)
        entry = measure(device, n, args.batch * (4 if device.type == "cuda" else 1), args.workers)
        entry["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
        results[device.type] = entry
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Alignment throughput",
        "",
        "Written by `benchmarks/align_bench.py`.",
        "",
        "| device | images | per-image loop (img/s) | batched (img/s) | speed-up |",
        "|---|---|---|---|---|",
    ]
    for r in results.values():
        name = r["gpu"] or f"CPU, {r['threads']} threads"
        lines.append(
            f"| {name} | {r['images']} | {r['loop_img_s']} | {r['batched_img_s']} (batch {r['batch']}) | "
            f"{r['speedup']}x |"
        )
    (RESULTS / "align.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
