"""LLaVA-Rad's checkpoint layout and its key map onto transformers' `LlavaForConditionalGeneration` (Dinov2 tower).

Pure renaming and splitting of tensors; no file I/O. The map (README, "What is mapped"): timm trunk ->
`model.vision_tower.*` (qkv split in three -> attention.{q,k,v}_proj, attn.proj -> attention.o_proj (transformers 5
names), ls1/ls2.gamma -> layer_scale1/2.lambda1, norm -> layernorm), projector `mm_projector.{0,2}` ->
`model.multi_modal_projector.linear_{1,2}`, Vicuna `model.*` -> `model.language_model.*`, `lm_head` unchanged.
Every function raises BadInputError naming the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from chexbench_common.errors import BadInputError

MAPPING_VERSION = "1"
IMAGE_TOKEN = "<image>"
VISION_PREFIX = "model.vision_tower."
PROJECTOR_PREFIX = "model.multi_modal_projector."
LANGUAGE_PREFIX = "model.language_model."
TRUNK_PREFIX = "visual.trunk."
# Keys of the open_clip checkpoint that LLaVA-Rad never uses: the text tower, the CLIP projection head, the
# temperature. Everything under visual.trunk. must be mapped.
OPEN_CLIP_UNUSED = ("text.", "visual.head.", "logit_scale", "logit_bias")
# Vicuna's .bin shards carry the rotary frequencies as buffers; transformers recomputes them from rope_theta.
LANGUAGE_UNUSED_SUFFIX = ".rotary_emb.inv_freq"
_LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(model\.layers\.\d+\.(?:self_attn|mlp)\.(\w+))\.lora_([AB])(?:\.\w+)?\.weight$"
)
_PROJECTOR_KEY = re.compile(r"^(?:.*\.)?mm_projector\.([02])\.(weight|bias)$")
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")
_BLOCK_MAP = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attn.proj.weight": "attention.o_proj.weight",
    "attn.proj.bias": "attention.o_proj.bias",
    "ls1.gamma": "layer_scale1.lambda1",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
    "ls2.gamma": "layer_scale2.lambda1",
}
_TOP_MAP = {
    "cls_token": "embeddings.cls_token",
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}


@dataclass(frozen=True)
class VisionDims:
    """The tower's sizes, read from its tensors (so tiny test towers convert like the real ViT-B/14 at 518 px)."""

    hidden: int
    layers: int
    patch: int
    image_size: int
    mlp_ratio: int
    channels: int

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch) ** 2


def open_clip_trunk(state: dict, path: Path) -> tuple[dict, list[str]]:
    """The timm trunk's tensors (prefix stripped) of an open_clip checkpoint, and the keys left out by design.

    Accepts a training checkpoint ({"state_dict": ...}) or a bare state dict, with or without DDP's `module.`.
    """
    state = state.get("state_dict", state)
    trunk, unused = {}, []
    for key, tensor in state.items():
        name = key.removeprefix("module.")
        if name.startswith(TRUNK_PREFIX):
            trunk[name[len(TRUNK_PREFIX) :]] = tensor
        elif name.startswith(OPEN_CLIP_UNUSED):
            unused.append(key)
        else:
            raise BadInputError(f"{path}: unexpected key {key!r}: not an open_clip image tower (visual.trunk.*) key")
    if not trunk:
        raise BadInputError(f"{path}: no visual.trunk.* keys: not an open_clip checkpoint with a timm image tower")
    return trunk, unused


def _need(trunk: dict, key: str, path: Path) -> torch.Tensor:
    if key not in trunk:
        raise BadInputError(f"{path}: missing key visual.trunk.{key} of the timm DINOv2 tower")
    return trunk[key]


def vision_dims(trunk: dict, path: Path) -> VisionDims:
    """Sizes from the tensors: hidden and patch from patch_embed, image size from pos_embed, depth from blocks.*."""
    proj = _need(trunk, "patch_embed.proj.weight", path)
    if proj.dim() != 4 or proj.shape[2] != proj.shape[3]:
        raise BadInputError(
            f"{path}: visual.trunk.patch_embed.proj.weight has shape {tuple(proj.shape)}, not (D, C, P, P)"
        )
    hidden, channels, patch = proj.shape[0], proj.shape[1], proj.shape[2]
    tokens = _need(trunk, "pos_embed", path).shape[1] - 1
    grid = round(tokens**0.5)
    if grid * grid != tokens:
        raise BadInputError(f"{path}: visual.trunk.pos_embed has {tokens + 1} positions, not 1 + a square grid")
    depths = {int(m.group(1)) for k in trunk if (m := _BLOCK_KEY.match(k))}
    layers = len(depths)
    if depths != set(range(layers)) or layers < 2:
        raise BadInputError(f"{path}: visual.trunk.blocks.* are numbered {sorted(depths)}, expected 0..N-1 with N >= 2")
    fc1 = _need(trunk, "blocks.0.mlp.fc1.weight", path).shape[0]
    if fc1 % hidden:
        raise BadInputError(f"{path}: visual.trunk.blocks.0.mlp.fc1.weight has {fc1} rows, not a multiple of {hidden}")
    return VisionDims(hidden, layers, patch, grid * patch, fc1 // hidden, channels)


def map_vision(trunk: dict, dims: VisionDims, path: Path) -> dict[str, torch.Tensor]:
    """The trunk as `model.vision_tower.*` tensors, plus the (unused, zero) mask token Dinov2Model declares."""
    block_keys = [*_BLOCK_MAP, "attn.qkv.weight", "attn.qkv.bias"]
    for key in [*_TOP_MAP, *(f"blocks.{i}.{k}" for i in range(dims.layers) for k in block_keys)]:
        _need(trunk, key, path)
    out = {}
    for key, tensor in trunk.items():
        if key in _TOP_MAP:
            out[_TOP_MAP[key]] = tensor
            continue
        match = _BLOCK_KEY.match(key)
        if not match:
            raise BadInputError(f"{path}: unexpected key visual.trunk.{key}: not part of a timm DINOv2 ViT")
        layer, rest = match.groups()
        prefix = f"encoder.layer.{layer}."
        if rest in ("attn.qkv.weight", "attn.qkv.bias"):
            kind = rest.rsplit(".", 1)[1]
            if tensor.shape[0] != 3 * dims.hidden:
                raise BadInputError(
                    f"{path}: visual.trunk.{key} has shape {tuple(tensor.shape)}, first dim != 3 x {dims.hidden}"
                )
            for part, name in zip(tensor.chunk(3, dim=0), ("q_proj", "k_proj", "v_proj"), strict=True):
                out[f"{prefix}attention.{name}.{kind}"] = part
        elif rest in _BLOCK_MAP:
            out[prefix + _BLOCK_MAP[rest]] = tensor
        else:
            raise BadInputError(f"{path}: unexpected key visual.trunk.{key}: not part of a timm DINOv2 ViT block")
    out["embeddings.mask_token"] = torch.zeros(1, dims.hidden, dtype=trunk["cls_token"].dtype)
    return {VISION_PREFIX + k: v for k, v in out.items()}


def map_projector(state: dict, path: Path) -> dict[str, torch.Tensor]:
    """`[...].mm_projector.{0,2}.{weight,bias}` (whatever prefix LLaVA-Rad wrote) -> multi_modal_projector.linear_*."""
    out = {}
    for key, tensor in state.items():
        match = _PROJECTOR_KEY.match(key)
        if not match:
            raise BadInputError(f"{path}: unexpected key {key!r}: only mm_projector.{{0,2}}.{{weight,bias}} are known")
        new = f"{PROJECTOR_PREFIX}linear_{1 if match.group(1) == '0' else 2}.{match.group(2)}"
        if new in out:
            raise BadInputError(f"{path}: key {key!r} duplicates another mm_projector key")
        out[new] = tensor
    missing = {f"{PROJECTOR_PREFIX}linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")} - set(out)
    if missing:
        raise BadInputError(f"{path}: missing mm_projector keys for {sorted(missing)} (mlp2x_gelu has two linears)")
    return out


def language_key(key: str, path: Path) -> str:
    """A Vicuna (LlamaForCausalLM) key -> its name inside LlavaForConditionalGeneration."""
    if key.startswith("model."):
        return LANGUAGE_PREFIX + key[len("model.") :]
    if key == "lm_head.weight":
        return key
    raise BadInputError(f"{path}: unexpected key {key!r}: not a LlamaForCausalLM weight (model.* or lm_head.weight)")


@dataclass(frozen=True)
class LoraKey:
    """One LoRA tensor of LLaVA-Rad's adapter: the Vicuna module it adapts and whether it is A or B."""

    module: str  # e.g. model.layers.0.self_attn.q_proj (Vicuna's name)
    target: str  # q_proj, ...
    part: str  # "A" or "B"


def lora_key(key: str, path: Path) -> LoraKey:
    """Parse `base_model.model.model.layers.N.{self_attn,mlp}.X.lora_{A,B}[.default].weight`."""
    match = _LORA_KEY.match(key)
    if not match:
        raise BadInputError(
            f"{path}: unexpected key {key!r}: expected "
            "base_model.model.model.layers.N.<self_attn|mlp>.<proj>.lora_A/B.weight"
        )
    return LoraKey(module=match.group(1), target=match.group(2), part=match.group(3))


def converted_module(vicuna_module: str) -> str:
    """Vicuna module name -> the module's name in the converted model (`model.language_model.layers...`)."""
    return LANGUAGE_PREFIX + vicuna_module[len("model.") :]


def peft_key(vicuna_module: str, part: str) -> str:
    """The key PEFT saves for this LoRA tensor on the converted model (adapter name stripped, as PEFT saves it)."""
    return f"base_model.model.{converted_module(vicuna_module)}.lora_{part}.weight"


def lora_target_regex(targets: list[str]) -> str:
    """PEFT target_modules as a full-match regex restricted to the language model (never the tower or projector)."""
    return rf".*language_model\.layers\.\d+\.(?:self_attn|mlp)\.(?:{'|'.join(sorted(targets))})"
