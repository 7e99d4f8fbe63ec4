"""Random-weight BioViL-T in the published file layouts (tests, the demo): the image checkpoint with every key the
real one has (the temporal pooler and the ImageNet classifier included, though a single-image scorer ignores them)
and a CXR-BERT folder (config.json, vocab.txt, tokenizer_config.json, pytorch_model.bin with `bert.*`,
`cls.predictions.*` and `cls_projection_head.*`). The image model is the full ResNet-50 by default, so hi-ml's own
ImageModel loads it too (`make bench ALIGN_ENV=himl`); the text model is a 2-layer BERT of width 32, which hi-ml's
CXRBertModel loads from its config."""

from __future__ import annotations

import io
import json
import string
from pathlib import Path

import torch
from chexbench_common.atomic import atomic_path, write_json_atomic

from .biovil import PATCH, ImageTower, TextTower

IMAGE_FILE = "biovil_t_image_model_proj_size_128.pt"
TEXT_DIR = "text"
DONE = "tiny.json"  # written last: what was built (a folder without it is incomplete or from an older builder)
FULL_WIDTH = 64
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "no",
    "acute",
    "cardiopulmonary",
    "process",
    "the",
    "lungs",
    "are",
    "clear",
    "there",
    "is",
    "a",
    "small",
    "moderate",
    "large",
    "left",
    "right",
    "pleural",
    "effusion",
    "pneumothorax",
    "consolidation",
    "heart",
    "size",
    "normal",
    "cardiomegaly",
    "edema",
    "opacity",
    "atelectasis",
    "support",
    "devices",
    "tube",
    "line",
    "in",
    "place",
    "lung",
    "base",
    "bilateral",
    "mild",
    "stable",
    "unchanged",
    "findings",
    "of",
    "and",
    "with",
    "or",
    "without",
]


def vocabulary() -> list[str]:
    """Special tokens, single characters, word-piece continuations and a few report words, each once."""
    pieces = list(string.ascii_lowercase + string.digits + string.punctuation)
    continuations = [f"##{c}" for c in string.ascii_lowercase + string.digits]
    return list(dict.fromkeys(SPECIAL + pieces + continuations + WORDS))


def _pooler_keys(blocks: int = 3, dim: int = PATCH) -> dict[str, torch.Tensor]:
    """The temporal pooler's tensors (hi-ml's VisionTransformerPooler: 3 blocks, dim 256, MLP ratio 1)."""
    state = {"encoder.vit_pooler.type_embed": torch.randn(2, 1, dim) * 0.02}
    for b in range(blocks):
        p = f"encoder.vit_pooler.blocks.{b}."
        for name in ("norm1", "norm2"):
            state[p + f"{name}.weight"], state[p + f"{name}.bias"] = torch.ones(dim), torch.zeros(dim)
        for name in ("attn.proj_q", "attn.proj_k", "attn.proj_v"):  # no bias (hi-ml's qkv_bias=False)
            state[p + f"{name}.weight"] = torch.randn(dim, dim) * 0.02
        for name in ("attn.proj", "mlp.fc1", "mlp.fc2"):
            state[p + f"{name}.weight"], state[p + f"{name}.bias"] = torch.randn(dim, dim) * 0.02, torch.zeros(dim)
    state["encoder.vit_pooler.norm_post.weight"], state["encoder.vit_pooler.norm_post.bias"] = (
        torch.ones(dim),
        torch.zeros(dim),
    )
    return state


def calibrate_batchnorm(model: torch.nn.Module, seed: int, n: int = 8, size: int = 128) -> None:
    """Set every BatchNorm's running statistics to the batch statistics of n smooth random images (float64, so that
    both torch stacks build the same float32 weights). Random running statistics make a full-depth random ResNet-50
    map every image to nearly one direction (pairwise cosines > 0.99999 on the demo's images); calibrated ones give
    0.93-0.99, so the score depends on the image and a wrongly loaded image shows."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: one batch gives exactly its statistics
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, size // 16, size // 16, generator=generator, dtype=torch.float64)
    images = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear").expand(-1, 3, -1, -1)
    model.double().train()
    with torch.no_grad():
        model(images)
    model.float().eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1


def build_tiny_image(path: Path, *, width: int = FULL_WIDTH, seed: int = 0) -> Path:
    """Random weights in the published layout; width 64 is hi-ml's fixed ResNet-50 (it loads nothing narrower)."""
    torch.manual_seed(seed)
    model = ImageTower(width=width)
    with torch.no_grad():  # a non-zero missing-previous embedding, as in trained weights
        model.encoder.missing_previous_emb.normal_(std=0.02)
    calibrate_batchnorm(model, seed)
    state = model.state_dict()
    trunk = model.encoder.encoder.features
    state |= {
        "encoder.encoder.fc.weight": torch.randn(1000, trunk) * 0.01,
        "encoder.encoder.fc.bias": torch.zeros(1000),
    }
    state |= _pooler_keys()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(state, path)
    return path


def _save(state: dict[str, torch.Tensor], path: Path) -> None:
    """torch.save through memory, then an atomic write: torch names the archive inside the file after the file it
    writes, so saving to a temporary name would make every build's sha256 differ."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def build_tiny_text(folder: Path, *, hidden: int = 32, max_positions: int = 64, seed: int = 0) -> Path:
    from transformers import BertConfig

    torch.manual_seed(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    fields = {
        "vocab_size": len(vocab),
        "hidden_size": hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 2 * hidden,
        "max_position_embeddings": max_positions,
        "type_vocab_size": 2,
        "projection_size": 128,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    model = TextTower(BertConfig(**fields))
    state = {f"bert.{k}": v for k, v in model.bert.state_dict().items() if not k.endswith("position_ids")}
    state |= {f"cls_projection_head.{k}": v for k, v in model.cls_projection_head.state_dict().items()}
    state |= {  # the masked-language-model head the published file carries (unused by the scorer)
        "cls.predictions.bias": torch.zeros(len(vocab)),
        "cls.predictions.transform.dense.weight": torch.randn(hidden, hidden) * 0.02,
        "cls.predictions.transform.dense.bias": torch.zeros(hidden),
        "cls.predictions.transform.LayerNorm.weight": torch.ones(hidden),
        "cls.predictions.transform.LayerNorm.bias": torch.zeros(hidden),
    }
    _save(state, folder / "pytorch_model.bin")
    config = {"architectures": ["CXRBertModel"], "model_type": "cxr-bert", **fields}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer = {"do_lower_case": True, "model_max_length": max_positions, "tokenizer_class": "BertTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer, indent=2) + "\n")
    return folder


def build_tiny_biovil(out_dir: Path, *, width: int = FULL_WIDTH, seed: int = 0) -> Path:
    """<out_dir>/biovil_t_image_model_proj_size_128.pt, <out_dir>/text/ and, last, <out_dir>/tiny.json."""
    out_dir = Path(out_dir)
    build_tiny_image(out_dir / IMAGE_FILE, width=width, seed=seed)
    build_tiny_text(out_dir / TEXT_DIR, seed=seed)
    write_json_atomic(out_dir / DONE, {"image_width": width, "seed": seed})
    return out_dir
