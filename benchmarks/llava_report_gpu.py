"""llava-report at LLaVA-Rad's real size on a GPU, random weights (no download): the converted
architecture (DINOv2 ViT-B/14 tower at 518 px, 1369 image tokens, the mlp2x_gelu projector, a Llama-7B language
model) in bf16, with the stage's own LoRA placement (finetune.LORA_TARGETS, r 64 / α 128, projector trained) and
gradient checkpointing.

Measured in one run, so the ratios need no outside figure:
- the bf16 bound: TFLOP/s of a large bf16 matrix product on this GPU;
- fine-tuning: samples/s of forward + backward + AdamW steps on image-findings samples, and the model FLOP
  utilisation against that bound (6 · language-model parameters · tokens per step, the usual estimate);
- generation: greedy tokens/s at batch 1 and 8 (256 new tokens, as the stage), against the weight-streaming bound
  (bytes of the bf16 weights per decoding step / memory bandwidth measured by a large device copy);
- GPU utilisation sampled by nvidia-smi while each part runs.

    .venv/bin/python benchmarks/llava_report_gpu.py                 # on a GPU (about 3 minutes on one H100-class GPU)
    .venv/bin/python benchmarks/llava_report_gpu.py --tiny --device cpu   # smoke test of the code path

Results: benchmarks/results/llava_report_gpu.json and .md (not with --tiny, unless --out is given).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from pathlib import Path

import torch
from chexbench_common.rundir import gpu_description
from chexbench_llava_report.finetune import LORA_TARGETS
from chexbench_llava_report.llava_folder import PROJECTOR

RESULTS = Path(__file__).parent / "results"
REAL = {"image": 518, "patch": 14, "tower": (768, 12, 12), "llm": (4096, 32, 32, 11008), "vocab": 32001}
TINY = {"image": 28, "patch": 14, "tower": (32, 2, 2), "llm": (64, 2, 4, 128), "vocab": 101}


def build(size: dict, device: torch.device, dtype: torch.dtype):
    """The converted LLaVA-Rad architecture with random weights, and its LoRA-wrapped copy's trainable parameters."""
    from transformers import Dinov2Config, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    width, layers, heads = size["tower"]
    hidden, llm_layers, llm_heads, inner = size["llm"]
    config = LlavaConfig(
        vision_config=Dinov2Config(
            hidden_size=width,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * width,
            image_size=size["image"],
            patch_size=size["patch"],
            layerscale_value=1.0,
        ),
        text_config=LlamaConfig(
            vocab_size=size["vocab"],
            hidden_size=hidden,
            num_hidden_layers=llm_layers,
            num_attention_heads=llm_heads,
            num_key_value_heads=llm_heads,
            intermediate_size=inner,
            max_position_embeddings=4096,
        ),
        image_token_id=size["vocab"] - 1,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    with torch.device(device):
        model = LlavaForConditionalGeneration(config).to(dtype)
    return model


def inputs(size: dict, batch: int, answer: int, device: torch.device, dtype: torch.dtype) -> dict:
    """A batch of prompts shaped as the stage builds them: ~35 text tokens, the image placeholders, an answer."""
    patches = (size["image"] // size["patch"]) ** 2
    prompt = torch.randint(2, size["vocab"] - 2, (batch, 35), device=device)
    image = torch.full((batch, patches), size["vocab"] - 1, device=device)
    tail = torch.randint(2, size["vocab"] - 2, (batch, answer), device=device)
    ids = torch.cat([prompt[:, :1], image, prompt[:, 1:], tail], dim=1)
    pixels = torch.randn(batch, 3, size["image"], size["image"], device=device, dtype=dtype)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels}


class Utilisation:
    """nvidia-smi's GPU utilisation sampled every 0.2 s while the block runs (mean, in %)."""

    def __enter__(self):
        self.samples, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop.wait(0.2):
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.mean = sum(self.samples) / len(self.samples) if self.samples else None


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bf16_bound(device, dtype, n: int) -> float:
    """TFLOP/s of an n x n x n product in `dtype` (best of 5)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(6):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12


def bandwidth(device, n_bytes: int) -> float:
    """GB/s of a device-to-device copy (read + write), best of 5."""
    x = torch.empty(n_bytes // 2, device=device, dtype=torch.bfloat16)
    y = torch.empty_like(x)
    best = float("inf")
    for _ in range(6):
        sync(device)
        t = time.perf_counter()
        y.copy_(x)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n_bytes / best / 1e9


def finetune_rate(model, size, device, dtype, batch: int, steps: int) -> dict:
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(
        model,
        LoraConfig(r=64, lora_alpha=128, lora_dropout=0.05, target_modules=LORA_TARGETS, modules_to_save=[PROJECTOR]),
    )
    peft.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft.enable_input_require_grads()
    optimiser = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-4)
    batch_inputs = inputs(size, batch, 120, device, dtype)
    batch_inputs["labels"] = batch_inputs["input_ids"].clone()
    llm_params = sum(p.numel() for n, p in model.named_parameters() if "language_model" in n and "lora_" not in n)
    tokens = batch_inputs["input_ids"].numel()

    def step():
        loss = peft(**batch_inputs).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    step()  # warm-up
    with Utilisation() as gpu:
        sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        seconds = time.perf_counter() - t
    peft.unload()
    return {
        "batch": batch,
        "tokens_per_sample": tokens // batch,
        "samples_per_s": batch * steps / seconds,
        "tflops_achieved": 6 * llm_params * tokens * steps / seconds / 1e12,
        "gpu_utilisation_pct": gpu.mean,
    }


def generate_rate(model, size, device, dtype, batch: int, new_tokens: int) -> dict:
    model.gradient_checkpointing_disable()  # left on by the fine-tuning part; it would turn the KV cache off
    model.eval()
    batch_inputs = inputs(size, batch, 0, device, dtype)
    kwargs = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}
    with torch.no_grad():
        model.generate(**batch_inputs, max_new_tokens=2, do_sample=False)  # warm-up
        with Utilisation() as gpu:
            sync(device)
            t = time.perf_counter()
            out = model.generate(**batch_inputs, **kwargs)
            sync(device)
            seconds = time.perf_counter() - t
    generated = (out.shape[1] - batch_inputs["input_ids"].shape[1]) * batch
    return {
        "batch": batch,
        "new_tokens": generated,
        "tokens_per_s": generated / seconds,
        "gpu_utilisation_pct": gpu.mean,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="The tiny architecture (a smoke test of the code path).")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=10, help="Fine-tuning steps timed.")
    parser.add_argument("--batch", type=int, default=4, help="Fine-tuning samples per step.")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, help="Folder for the results [default: benchmarks/results, not --tiny].")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16
    size = TINY if args.tiny else REAL
    peak = bf16_bound(device, dtype, 256 if args.tiny else 8192)
    gbps = bandwidth(device, 2**22 if args.tiny else 2**31)
    model = build(size, device, dtype)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    result = {
        "device": gpu_description() if device.type == "cuda" else ["cpu"],
        "architecture": "tiny" if args.tiny else "LLaVA-Rad size: DINOv2 ViT-B/14 518 px + Llama-7B, random, bf16",
        "bf16_matmul_tflops": peak,
        "copy_bandwidth_gbps": gbps,
        "weights_gb": weight_bytes / 1e9,
    }
    tuned = finetune_rate(model, size, device, dtype, args.batch, args.steps)
    tuned["mfu_vs_measured_bf16_bound"] = tuned["tflops_achieved"] / peak
    result["finetune"] = tuned
    result["generate"] = []
    for batch in (1, 8):
        rate = generate_rate(model, size, device, dtype, batch, 8 if args.tiny else args.new_tokens)
        # each decoding step streams every weight once: the bound is bandwidth / weight bytes steps per second
        rate["bound_tokens_per_s"] = batch * gbps * 1e9 / weight_bytes
        rate["ratio_to_bound"] = rate["tokens_per_s"] / rate["bound_tokens_per_s"]
        result["generate"].append(rate)
    if device.type == "cuda":
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
    print(json.dumps(result, indent=1))
    out = args.out or (None if args.tiny else RESULTS)
    if not out:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "llava_report_gpu.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# llava-report at LLaVA-Rad's size on a GPU (random weights, bf16)",
        "",
        f"Written by `benchmarks/llava_report_gpu.py` on {', '.join(result['device'])}.",
        f"- bf16 matmul bound {peak:.0f} TFLOP/s; copy bandwidth {gbps:.0f} GB/s; "
        f"weights {result['weights_gb']:.1f} GB",
        f"- finetune (LoRA r64 + projector, gradient checkpointing, batch {tuned['batch']}, "
        f"{tuned['tokens_per_sample']} tokens/sample): {tuned['samples_per_s']:.2f} samples/s, "
        f"{tuned['tflops_achieved']:.0f} TFLOP/s = {tuned['mfu_vs_measured_bf16_bound']:.2f} of the bound, "
        f"GPU utilisation {tuned['gpu_utilisation_pct']}%",
        *(
            f"- generate, batch {g['batch']}: {g['tokens_per_s']:.1f} tokens/s = {g['ratio_to_bound']:.2f} of the "
            f"weight-streaming bound ({g['bound_tokens_per_s']:.1f}), GPU utilisation {g['gpu_utilisation_pct']}%"
            for g in result["generate"]
        ),
    ]
    (out / "llava_report_gpu.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
