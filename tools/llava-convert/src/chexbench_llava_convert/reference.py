"""An independent reference forward of LLaVA-Rad, read straight from the user's original files, and the comparison
of a converted folder against it (`check-conversion`).

Hand-written on purpose: LLaVA-Rad's own code is research-only (never used or copied here) and timm is not a
dependency. It re-implements, from their published descriptions, timm's DINOv2 ViT forward (patch embedding, CLS +
position embedding, pre-norm blocks with layer scale; hidden state -2 without the CLS token, no final norm), the
mlp2x_gelu projector, the splice of the image features where LLaVA-Rad's `<image>` placeholder (-200) stands, and
Vicuna as transformers' `LlamaForCausalLM` with the LoRA merged by hand (W + alpha/r B A in fp32). It shares no code
with `layout`/`convert`, so a mapping mistake there shows up as a difference here.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from chexbench_common.errors import BadInputError, MissingResourceError
from PIL import Image

IMAGE_PLACEHOLDER = -200  # LLaVA-Rad's IMAGE_TOKEN_INDEX in input_ids
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_PROMPT = "<image>\nDescribe the findings of the chest x-ray.\n"


def preprocess(image: Image.Image, size: int) -> torch.Tensor:
    """open_clip's eval transform (torchvision semantics): Resize(size, BICUBIC) on the shortest side with the long
    side truncated, CenterCrop with round-half-even offsets, RGB, /255, OpenAI mean/std. Returns (3, size, size)."""
    w, h = image.size
    scale_long = int(size * max(w, h) / min(w, h))
    new = (size, scale_long) if w <= h else (scale_long, size)
    if new != (w, h):
        image = image.resize(new, Image.Resampling.BICUBIC)
    top, left = int(round((new[1] - size) / 2.0)), int(round((new[0] - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (pixels - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]


def _load(path: Path) -> dict:
    if not path.is_file():
        raise MissingResourceError(f"{path} does not exist (needed by the reference forward)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_trunk(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The `visual.trunk.` tensors of an open_clip checkpoint, fp32, prefix removed."""
    state = _load(checkpoint)
    state = state.get("state_dict", state)
    trunk = {}
    for key, value in state.items():
        _, sep, rest = key.partition("visual.trunk.")
        if sep:
            trunk[rest] = value.float()
    if not trunk:
        raise BadInputError(f"{checkpoint}: no visual.trunk.* tensors")
    return trunk


def vit_hidden_states(trunk: dict, pixels: torch.Tensor, heads: int, eps: float = 1e-6) -> list[torch.Tensor]:
    """timm VisionTransformer (DINOv2 flavour) hidden states: [embeddings, block 1, ..., block N]."""
    weight = trunk["patch_embed.proj.weight"]
    x = F.conv2d(pixels, weight, trunk["patch_embed.proj.bias"], stride=weight.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([trunk["cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
    if trunk["pos_embed"].shape[1] != x.shape[1]:
        raise BadInputError(f"image gives {x.shape[1]} tokens, the tower's pos_embed has {trunk['pos_embed'].shape[1]}")
    x = x + trunk["pos_embed"]
    states = [x]
    depth = 1 + max(int(k.split(".")[1]) for k in trunk if k.startswith("blocks."))
    dim = x.shape[-1]
    for i in range(depth):
        p = {k[len(f"blocks.{i}.") :]: v for k, v in trunk.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(x, (dim,), p["norm1.weight"], p["norm1.bias"], eps)
        qkv = F.linear(h, p["attn.qkv.weight"], p["attn.qkv.bias"])
        q, k, v = qkv.reshape(x.shape[0], x.shape[1], 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dim // heads), dim=-1)
        h = (attn @ v).transpose(1, 2).reshape(x.shape)
        x = x + p["ls1.gamma"] * F.linear(h, p["attn.proj.weight"], p["attn.proj.bias"])
        h = F.layer_norm(x, (dim,), p["norm2.weight"], p["norm2.bias"], eps)
        h = F.linear(
            F.gelu(F.linear(h, p["mlp.fc1.weight"], p["mlp.fc1.bias"])), p["mlp.fc2.weight"], p["mlp.fc2.bias"]
        )
        x = x + p["ls2.gamma"] * h
        states.append(x)
    return states


def merge_lora_by_hand(model: torch.nn.Module, adapter: Path, adapter_config: Path) -> int:
    """W <- W + (alpha / r) B A for every LoRA pair of LLaVA-Rad's adapter file; returns how many were merged."""
    config = json.loads(adapter_config.read_text())
    scale = config["lora_alpha"] / config["r"]
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in _load(adapter).items():
        match = re.search(r"(model\.layers\.\d+\.\w+\.\w+)\.lora_([AB])", key)
        if not match:
            raise BadInputError(f"{adapter}: key {key!r} is not a LoRA tensor of a Llama layer")
        pairs.setdefault(match.group(1), {})[match.group(2)] = value.float()
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, pair in pairs.items():
            if name not in modules:
                raise BadInputError(f"{adapter}: LoRA module {name} is not in the Vicuna model")
            weight = modules[name].weight
            weight.copy_((weight.float() + scale * pair["B"] @ pair["A"]).to(weight.dtype))
    return len(pairs)


@dataclass
class ReferenceOutputs:
    pixels: torch.Tensor  # (1, 3, S, S)
    tower: torch.Tensor  # (1, patches, vision hidden): hidden state -2 without CLS
    projected: torch.Tensor  # (1, patches, text hidden)
    logits: torch.Tensor  # (1, tokens, vocab)


def reference_forward(
    llava_rad: Path, vicuna: Path, image: Image.Image, input_ids: list[int], heads: int, dtype, device
) -> ReferenceOutputs:
    """LLaVA-Rad's forward on one image and one prompt whose image position holds IMAGE_PLACEHOLDER."""
    from transformers import LlamaForCausalLM

    config = json.loads((llava_rad / "config.json").read_text())
    checkpoint = llava_rad / Path(config.get("mm_vision_tower_checkpoint") or "biomedclipcxr_518_checkpoint.pt").name
    trunk = load_trunk(checkpoint)
    size = trunk["patch_embed.proj.weight"].shape[-1] * round(math.sqrt(trunk["pos_embed"].shape[1] - 1))
    pixels = preprocess(image, size)[None]
    with torch.no_grad():
        tower = vit_hidden_states({k: v.to(device, dtype) for k, v in trunk.items()}, pixels.to(device, dtype), heads)
        tower = tower[config.get("mm_vision_select_layer", -2)][:, 1:]
        proj = {
            re.sub(r"^.*mm_projector\.", "", k): v.to(device, dtype)
            for k, v in _load(llava_rad / "non_lora_trainables.bin").items()
        }
        projected = F.linear(
            F.gelu(F.linear(tower, proj["0.weight"], proj["0.bias"])), proj["2.weight"], proj["2.bias"]
        )
        llama = LlamaForCausalLM.from_pretrained(vicuna, dtype=torch.float32)
        adapter = next(
            p for p in (llava_rad / "adapter_model.bin", llava_rad / "adapter_model.safetensors") if p.exists()
        )
        merge_lora_by_hand(llama, adapter, llava_rad / "adapter_config.json")
        llama = llama.to(device, dtype).eval()
        at = input_ids.index(IMAGE_PLACEHOLDER)
        embed = llama.get_input_embeddings()
        before = embed(torch.tensor([input_ids[:at]], device=device))
        after = embed(torch.tensor([input_ids[at + 1 :]], device=device))
        logits = llama(inputs_embeds=torch.cat([before, projected, after], dim=1)).logits
    return ReferenceOutputs(pixels, tower.float().cpu(), projected.float().cpu(), logits.float().cpu())


def default_image(size: int) -> Image.Image:
    """A deterministic non-square grey test picture (so resize and crop are exercised): smooth bands plus noise."""
    rng = np.random.default_rng(0)
    h, w = size + 37, size + 3
    yy, xx = np.mgrid[0:h, 0:w]
    picture = 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 20, (h, w))
    return Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), mode="L")


def check_conversion(
    converted: Path,
    llava_rad: Path,
    vicuna: Path,
    image: Image.Image | None = None,
    *,
    prompt: str = DEFAULT_PROMPT,
    device="cpu",
    dtype=torch.float32,
) -> dict[str, float]:
    """Max |Δ| between the converted folder (adapter applied if present) and the reference, on one image + prompt."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    converted = Path(converted)
    record_path = converted / "chexbench_conversion.json"
    if not record_path.is_file():
        raise MissingResourceError(f"{record_path} does not exist: --converted must be a folder written by convert")
    record = json.loads(record_path.read_text())
    image = image if image is not None else default_image(record["image_size"])
    from .processor import open_clip_resize_crop

    processor = AutoProcessor.from_pretrained(converted, backend="pil")
    batch = processor(text=prompt, images=open_clip_resize_crop(image, record["image_size"]), return_tensors="pt")
    ids = batch["input_ids"][0].tolist()
    image_id = record["image_token_id"]
    first, count = ids.index(image_id), ids.count(image_id)
    if ids[first : first + count] != [image_id] * count:
        raise BadInputError(f"the prompt {prompt!r} must hold exactly one {processor.image_token}")
    reference_ids = ids[:first] + [IMAGE_PLACEHOLDER] + ids[first + count :]
    ref = reference_forward(
        Path(llava_rad), Path(vicuna), image, reference_ids, record["vision_heads_used"], dtype, device
    )

    model = LlavaForConditionalGeneration.from_pretrained(converted, dtype=dtype).to(device).eval()
    if (converted / "adapter").is_dir():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, converted / "adapter").eval()
    pixels = batch["pixel_values"].to(device, dtype)
    with torch.no_grad():
        tower_out = model.get_image_features(
            pixel_values=pixels,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            output_hidden_states=True,
        )
        tower = tower_out.hidden_states[-2][:, 1:].float().cpu()
        projected = torch.stack(list(tower_out.pooler_output)).float().cpu()
        logits = model(input_ids=batch["input_ids"].to(device), pixel_values=pixels).logits.float().cpu()
    vocab = ref.logits.shape[-1]
    return {
        "pixels": (batch["pixel_values"].float() - ref.pixels).abs().max().item(),
        "tower_features": (tower - ref.tower).abs().max().item(),
        "image_features": (projected - ref.projected).abs().max().item(),
        "logits": (logits[..., :vocab] - ref.logits).abs().max().item(),
        "image_token_logit": logits[..., vocab:].abs().max().item(),
        "tower_features_scale": ref.tower.abs().max().item(),
        "image_features_scale": ref.projected.abs().max().item(),
        "logits_scale": ref.logits.abs().max().item(),
    }
