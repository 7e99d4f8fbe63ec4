"""Classify data loading: the one-time cache build rate, an epoch's reading from the cache against decoding
MIMIC-sized JPEGs every time, and the training loop's images/s (full ResNet-50 at 224 px, forward + backward) on the
same machine; the goal is loader throughput >= 3x the model's images/s.

    .venv/bin/python benchmarks/classify_bench.py [--images 48]

Results: benchmarks/results/classify.json and classify.md.
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
from chexbench_classify.data import ImageCache, LabelledImages
from chexbench_classify.model import Classifier
from machine import cpu_model
from PIL import Image

RESULTS = Path(__file__).parent / "results"


def rate(n: int, fn) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=48)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    files = []
    for i in range(args.images):  # MIMIC-CXR-JPG size, smooth content so JPEG sizes are realistic (~1-2 MB)
        y, x = np.mgrid[0:3056, 0:2544].astype(np.float32)
        grey = 128 + 60 * np.sin(x / (200 + i)) * np.cos(y / 300) + rng.normal(0, 8, (3056, 2544))
        path = tmp / f"{i}.jpg"
        Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).save(path, quality=95)
        files.append(path)
    frame = {"file": files}
    y, mask = np.zeros((len(files), 14), np.float32), np.ones((len(files), 14), bool)
    cache = ImageCache(tmp / "cache", 224)
    build = rate(len(files), lambda: [cache.load(f) for f in files])
    cached = LabelledImages(frame, y, mask, cache)
    uncached = LabelledImages(frame, y, mask, ImageCache(None, 224))
    rate(len(files), lambda: [cached[i] for i in range(len(files))])  # epoch 1: files hashed once per process
    from_cache = rate(len(files), lambda: [cached[i] for i in range(len(files))])  # epoch 2 onwards
    from_jpeg = rate(len(files), lambda: [uncached[i] for i in range(len(files))])
    model = Classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = torch.stack([cached[i][0] for i in range(16)])
    target = torch.zeros(16, 14)

    def steps(n=3):
        for _ in range(n):
            optimizer.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(model(batch), target).backward()
            optimizer.step()

    steps(1)  # warm-up
    train = rate(16 * 3, steps)
    entry = {
        "images": len(files),
        "jpeg_size": "2544x3056",
        "size": 224,
        "cache_build_img_s": round(build, 1),
        "epoch_from_cache_img_s": round(from_cache, 1),
        "epoch_from_jpeg_img_s": round(from_jpeg, 1),
        "cache_speedup": round(from_cache / from_jpeg, 1),
        "train_img_s_cpu": round(train, 2),
        "loader_over_model": round(from_cache / train, 1),
        "workers": 1,
        "threads": torch.get_num_threads(),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "classify.json").write_text(json.dumps({"cpu": entry}, indent=2) + "\n")
    (RESULTS / "classify.md").write_text(
        "# Classify data loading\n\nWritten by `benchmarks/classify_bench.py`.\n\n"
        f"- cache build (decode a {entry['jpeg_size']} JPEG, resize to 224, store): {entry['cache_build_img_s']} img/s"
        " per process\n"
        f"- one epoch's reading, one process: {entry['epoch_from_cache_img_s']} img/s from the cache against "
        f"{entry['epoch_from_jpeg_img_s']} img/s decoding the JPEGs ({entry['cache_speedup']}x)\n"
        f"- ResNet-50 training step at 224 px on the CPU ({entry['threads']} threads): "
        f"{entry['train_img_s_cpu']} img/s;"
        f" one loader process from the cache feeds {entry['loader_over_model']}x that\n"
    )
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
