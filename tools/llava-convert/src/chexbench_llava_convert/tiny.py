"""Tiny random LLaVA-Rad written in LLaVA-Rad's own file layout (the tests, the demo, llava-report's fixture).

`write_tiny_llava_rad(folder)` writes, with random weights and nothing downloaded:
- `llava-rad/`: `adapter_model.bin` + `adapter_config.json` (a PEFT LoRA on q/k/v/o/gate/up/down of a tiny Llama,
  keys `base_model.model.model.layers.N...lora_A/B.weight` as LLaVA-Rad saves them), `non_lora_trainables.bin`
  (`base_model.model.model.mm_projector.{0,2}.*`, fp16), `config.json` (LLaVA-Rad's mm_* fields) and an open_clip
  training checkpoint `biomedclipcxr_518_checkpoint.pt` (`module.visual.trunk.*` = a tiny timm DINOv2 ViT,
  plus the text tower, CLIP head and logit_scale that LLaVA-Rad ignores) with its `biomedclipcxr_518.json`;
- `vicuna/`: a tiny fp16 `LlamaForCausalLM` (safetensors) with a locally trained BPE tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

VISION_CHECKPOINT = "biomedclipcxr_518_checkpoint.pt"
VISION_CONFIG = "biomedclipcxr_518.json"
CORPUS = [
    "no acute cardiopulmonary process",
    "the lungs are clear without focal consolidation pleural effusion or pneumothorax",
    "heart size is normal mediastinal contours are within normal limits",
    "small left pleural effusion with adjacent atelectasis",
    "moderate cardiomegaly with mild pulmonary edema",
    "support devices in place endotracheal tube and right internal jugular line",
    "describe the findings of the chest x-ray",
    "a chat between a curious human and an artificial intelligence assistant user assistant",
]


@dataclass(frozen=True)
class TinyLlavaRad:
    """Where the tiny model's two input folders are, and its sizes."""

    llava_rad: Path
    vicuna: Path
    image_size: int
    patch: int


def tiny_tokenizer():
    """A byte-free BPE trained on a few report sentences, with Llama's <unk>/<s>/</s>, a BOS post-processor and
    Llama's word marker (a `▁` before every word, the first one included; decoded back to spaces)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    tok.decoder = decoders.Metaspace(prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)  # without progress: it wrote blank lines into batch logs
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def _trunk(hidden: int, layers: int, patch: int, image_size: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A timm DINOv2 ViT's state dict (vit_*_patch14_dinov2 names), random, layer scales far from 1.

    Weights are scaled by 1/sqrt(fan-in) so activations and attention logits stay O(1) at any size: with saturated
    attention a random network amplifies float rounding layer after layer and no comparison could be tight.
    """

    def rnd(*shape, scale=0.05):
        return torch.randn(*shape, generator=gen) * scale

    def linear(out_features, in_features):
        return rnd(out_features, in_features, scale=in_features**-0.5)

    grid = image_size // patch
    state = {
        "cls_token": rnd(1, 1, hidden, scale=0.5),
        "pos_embed": rnd(1, 1 + grid * grid, hidden, scale=0.5),
        "patch_embed.proj.weight": rnd(hidden, 3, patch, patch, scale=(3 * patch * patch) ** -0.5),
        "patch_embed.proj.bias": rnd(hidden),
        "norm.weight": 1 + rnd(hidden),
        "norm.bias": rnd(hidden),
    }
    for i in range(layers):
        b = f"blocks.{i}."
        state |= {
            b + "norm1.weight": 1 + rnd(hidden),
            b + "norm1.bias": rnd(hidden),
            b + "attn.qkv.weight": linear(3 * hidden, hidden),
            b + "attn.qkv.bias": rnd(3 * hidden),
            b + "attn.proj.weight": linear(hidden, hidden),
            b + "attn.proj.bias": rnd(hidden),
            b + "ls1.gamma": 0.5 + rnd(hidden, scale=0.3),
            b + "norm2.weight": 1 + rnd(hidden),
            b + "norm2.bias": rnd(hidden),
            b + "mlp.fc1.weight": linear(4 * hidden, hidden),
            b + "mlp.fc1.bias": rnd(4 * hidden),
            b + "mlp.fc2.weight": linear(hidden, 4 * hidden),
            b + "mlp.fc2.bias": rnd(hidden),
            b + "ls2.gamma": 0.5 + rnd(hidden, scale=0.3),
        }
    return state


def write_tiny_llava_rad(
    folder: str | Path,
    *,
    seed: int = 0,
    vision_hidden: int = 128,
    vision_layers: int = 3,
    patch: int = 14,
    image_size: int = 42,
    text_hidden: int = 64,
    text_layers: int = 2,
    lora_r: int = 4,
    lora_alpha: int = 8,
) -> TinyLlavaRad:
    """Write the tiny LLaVA-Rad checkpoint folder and Vicuna folder under `folder`; return their paths.

    The vision tower uses 64-wide heads (timm's ViT convention, which `convert` assumes), so vision_hidden must be a
    multiple of 64.
    """
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    llava_rad, vicuna = folder / "llava-rad", folder / "vicuna"
    llava_rad.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    tokenizer = tiny_tokenizer()
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden,
        intermediate_size=2 * text_hidden,
        num_hidden_layers=text_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.unk_token_id,
        tie_word_embeddings=False,
    )
    llama = LlamaForCausalLM(text_config)
    with torch.no_grad():  # a head at 1/sqrt(hidden) x 3 (not transformers' 0.02): logits of O(1), so the frozen
        # random head still lets a demo fine-tuning move the next-token distribution
        llama.lm_head.weight.copy_(torch.randn(llama.lm_head.weight.shape, generator=gen) * 3 * text_hidden**-0.5)
    llama = llama.to(torch.float16)
    llama.save_pretrained(vicuna)
    tokenizer.save_pretrained(vicuna)

    lora = LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=0.05,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    peft_model = get_peft_model(llama.float(), lora)
    with torch.no_grad():  # PEFT starts B at zero; random B makes the adapter matter
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    adapter = {k: v.to(torch.float16).contiguous() for k, v in get_peft_model_state_dict(peft_model).items()}
    torch.save(adapter, llava_rad / "adapter_model.bin")
    lora.save_pretrained(llava_rad)

    vision = _trunk(vision_hidden, vision_layers, patch, image_size, gen)
    clip_state = {f"module.visual.trunk.{k}": v for k, v in vision.items()}
    clip_state |= {
        "module.visual.head.proj.weight": torch.randn(16, vision_hidden, generator=gen),
        "module.text.transformer.embeddings.word_embeddings.weight": torch.randn(8, 16, generator=gen),
        "module.text.proj.weight": torch.randn(16, 16, generator=gen),
        "module.logit_scale": torch.tensor(4.6),
    }
    torch.save({"epoch": 1, "name": "tiny", "state_dict": clip_state}, llava_rad / VISION_CHECKPOINT)
    (llava_rad / VISION_CONFIG).write_text(
        json.dumps(
            {"embed_dim": 16, "vision_cfg": {"timm_model_name": "tiny_patch14_dinov2", "image_size": image_size}}
        )
    )

    prefix = "base_model.model.model.mm_projector."
    projector = {
        prefix + "0.weight": torch.randn(text_hidden, vision_hidden, generator=gen) * 0.1,
        prefix + "0.bias": torch.randn(text_hidden, generator=gen) * 0.1,
        prefix + "2.weight": torch.randn(text_hidden, text_hidden, generator=gen) * 0.1,
        prefix + "2.bias": torch.randn(text_hidden, generator=gen) * 0.1,
    }
    torch.save({k: v.to(torch.float16) for k, v in projector.items()}, llava_rad / "non_lora_trainables.bin")

    config = text_config.to_dict() | {
        "architectures": ["LlavaLlamaForCausalLM"],
        "model_type": "llava_llama",
        "mm_hidden_size": vision_hidden,
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_vision_tower": "biomedclip_cxr_518",
        "mm_vision_tower_config": VISION_CONFIG,
        "mm_vision_tower_checkpoint": VISION_CHECKPOINT,
        "image_aspect_ratio": "square",
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
    }
    (llava_rad / "config.json").write_text(json.dumps(config, indent=2, default=str))
    return TinyLlavaRad(llava_rad=llava_rad, vicuna=vicuna, image_size=image_size, patch=patch)
