"""The parts of benchmarks/gpu.sh that no stage benchmark covers, and its summary.

bound     the device's bf16 bound: TFLOP/s of a large bf16 matrix product (best of 5), the same measure as
          llava_report_gpu.py's, so every ratio in the summary is against one figure measured in the same run
classify  the classify stage's own Classifier (ResNet-50, 224 px): training images/s (forward + backward + Adam)
          in fp32 and in the stage's GPU default 16-mixed, and the model FLOP utilisation against the bound; the
          FLOPs of one step are counted by torch's FlopCounterMode, not taken from a paper
summary   gpu.json and gpu.md: every part's exit code, seconds, mean GPU utilisation (nvidia-smi samples taken by
          gpu.sh while the part ran) and its figures, each ratio against the bound

.venv/bin/python benchmarks/gpu_figures.py bound --device cuda --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from llava_report_gpu import bf16_bound, sync

PARTS = ("bound", "embed", "classify", "llava-report", "generate")


def classify_rates(device: torch.device, size: int, batch: int, steps: int) -> dict:
    """Training images/s of the stage's Classifier per precision, and TFLOP/s achieved (FLOPs counted once)."""
    from chexbench_classify.model import Classifier
    from torch.utils.flop_counter import FlopCounterMode

    model = Classifier().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, size, size, device=device, generator=torch.Generator(device).manual_seed(0))
    y = torch.zeros(batch, 14, device=device)

    def step(dtype):
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step(None)
    flops_per_image = counter.get_total_flops() / batch
    out = {"size": size, "batch": batch, "steps": steps, "train_gflop_per_image": flops_per_image / 1e9}
    half = torch.float16 if device.type == "cuda" else torch.bfloat16  # the stage's GPU default is 16-mixed
    for name, dtype in (("fp32", None), ("16-mixed", half)):
        step(dtype)  # warm-up
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step(dtype)
        sync(device)
        rate = batch * steps / (time.perf_counter() - start)
        out[name] = {"img_per_s": rate, "tflops_achieved": rate * flops_per_image / 1e12}
    return out


def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def utilisation(out: Path, part: str) -> float | None:
    """Mean of the nvidia-smi samples gpu.sh wrote while the part ran (None: no nvidia-smi, no samples)."""
    path = out / f"gpu-util-{part}.txt"
    samples = [float(v) for v in path.read_text().split() if v.replace(".", "", 1).isdigit()] if path.exists() else []
    return sum(samples) / len(samples) if samples else None


def figures(out: Path, part: str, bound: float | None) -> dict:
    """The part's headline figures from the JSON it wrote, each throughput with its ratio to the bf16 bound where
    the part knows its FLOPs (classify, llava-report fine-tuning); embed and generate give images/s."""
    ratio = (lambda tflops: tflops / bound) if bound else (lambda tflops: None)
    if part == "bound":
        return {"bf16_tflops": bound}
    if part == "embed":
        gpu = (read(out / "embed.json") or {}).get("gpu")
        if not gpu:
            return {}
        return {
            "raddino_img_per_s": gpu["raddino_forward_img_per_s"],
            "inception_img_per_s": gpu["inception_forward_img_per_s"],
            "end_to_end_img_per_s": gpu["end_to_end"]["img_per_s"],
        }
    if part == "classify":
        c = read(out / "classify_gpu.json")
        if not c:
            return {}
        return {
            p: {"img_per_s": c[p]["img_per_s"], "ratio_to_bf16_bound": ratio(c[p]["tflops_achieved"])}
            for p in ("fp32", "16-mixed")
        }
    if part == "llava-report":
        r = read(out / "llava_report_gpu.json")
        if not r:
            return {}
        tuned = r["finetune"]
        return {
            "finetune_samples_per_s": tuned["samples_per_s"],
            "finetune_ratio_to_bf16_bound": ratio(tuned["tflops_achieved"]),
            "generate_tokens_per_s": {g["batch"]: g["tokens_per_s"] for g in r["generate"]},
        }
    g = read(out / "generate_gpu.json")
    if not g:
        return {}
    return {
        model: {
            f"{dtype} batch {batch}": row.get("img_per_s", "out of memory")
            for dtype, rows in m["dtypes"].items()
            for batch, row in rows.items()
        }
        for model, m in g["models"].items()
    }


def summary(out: Path) -> dict:
    status = {}
    for line in (out / "gpu-parts.tsv").read_text().splitlines():
        part, rc, seconds, note = (line.split("\t") + [""])[:4]
        status[part] = {"exit_code": int(rc), "seconds": float(seconds), "note": note}
    bound = (read(out / "gpu_bound.json") or {}).get("bf16_tflops")
    parts = {
        part: status.get(part, {"exit_code": None, "seconds": None, "note": "not run"})
        | {"gpu_utilisation_pct": utilisation(out, part), "figures": figures(out, part, bound)}
        for part in PARTS
    }
    report = {"device": (read(out / "gpu_bound.json") or {}).get("device"), "bf16_tflops": bound, "parts": parts}
    (out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# GPU figures",
        "",
        f"Written by `benchmarks/gpu.sh` on {report['device']}; bf16 bound {bound} TFLOP/s (measured in the same run).",
        "",
        "| part | exit | s | GPU util % | figures |",
        "|---|---|---|---|---|",
    ]
    for part, p in parts.items():
        util = "n/a" if p["gpu_utilisation_pct"] is None else f"{p['gpu_utilisation_pct']:.0f}"
        shown = json.dumps(p["figures"]) if p["figures"] else p["note"] or "-"
        lines.append(f"| {part} | {p['exit_code']} | {p['seconds']} | {util} | {shown} |")
    (out / "gpu.md").write_text("\n".join(lines) + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["bound", "classify", "summary"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=224, help="classify: image side")
    parser.add_argument("--batch", type=int, default=64, help="classify: images per step")
    parser.add_argument("--steps", type=int, default=10, help="classify: timed steps per precision")
    parser.add_argument("--n", type=int, default=8192, help="bound: side of the bf16 product")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    if args.part == "bound":
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device} (check run, not a GPU)"
        result = {"device": name, "bf16_tflops": bf16_bound(device, torch.bfloat16, args.n)}
        (args.out / "gpu_bound.json").write_text(json.dumps(result, indent=2) + "\n")
    elif args.part == "classify":
        result = classify_rates(device, args.size, args.batch, args.steps)
        (args.out / "classify_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    else:
        result = summary(args.out)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
