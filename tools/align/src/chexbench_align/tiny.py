"""Random-weight BioViL-T in the published file layouts (tests, the demo): the image checkpoint with every key the
real one has (the temporal pooler and the ImageNet classifier included, though a single-image scorer ignores them)
and a CXR-BERT folder (config.json, vocab.txt, tokenizer_config.json, pytorch_model.bin with `bert.*`,
`cls.predictions.*` and `cls_projection_head.*`)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

from .biovil import PATCH, ImageTower, TextTower

IMAGE_FILE = "biovil_t_image_model_proj_size_128.pt"
TEXT_DIR = "text"
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
        for name in ("attn.proj_q", "attn.proj_k", "attn.proj_v", "attn.proj", "mlp.fc1", "mlp.fc2"):
            state[p + f"{name}.weight"], state[p + f"{name}.bias"] = torch.randn(dim, dim) * 0.02, torch.zeros(dim)
    state["encoder.vit_pooler.norm_post.weight"], state["encoder.vit_pooler.norm_post.bias"] = (
        torch.ones(dim),
        torch.zeros(dim),
    )
    return state


def build_tiny_image(path: Path, *, width: int = 8, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = ImageTower(width=width)
    with torch.no_grad():  # a non-zero missing-previous embedding and BatchNorm statistics, as in trained weights
        model.encoder.missing_previous_emb.normal_(std=0.02)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(std=0.1)
                module.running_var.uniform_(0.5, 1.5)
    state = model.state_dict()
    trunk = model.encoder.encoder.features
    state |= {
        "encoder.encoder.fc.weight": torch.randn(1000, trunk) * 0.01,
        "encoder.encoder.fc.bias": torch.zeros(1000),
    }
    state |= _pooler_keys()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


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
    torch.save(state, folder / "pytorch_model.bin")
    config = {"architectures": ["CXRBertModel"], "model_type": "cxr-bert", **fields}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer = {"do_lower_case": True, "model_max_length": max_positions, "tokenizer_class": "BertTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer, indent=2) + "\n")
    return folder


def build_tiny_biovil(out_dir: Path, *, seed: int = 0) -> Path:
    """<out_dir>/biovil_t_image_model_proj_size_128.pt and <out_dir>/text/."""
    out_dir = Path(out_dir)
    build_tiny_image(out_dir / IMAGE_FILE, seed=seed)
    build_tiny_text(out_dir / TEXT_DIR, seed=seed)
    return out_dir
