"""LLaVA-Rad checkpoint + Vicuna folder -> a transformers-native LLaVA folder (run by the user on their own copy).

Output (`out/`): `LlavaForConditionalGeneration` safetensors + config (Dinov2 tower, vision_feature_layer -2,
"default" features, image_token_id = Vicuna's vocab size), generation_config.json (suppresses `<image>`), the Vicuna
tokenizer with `<image>` (pad = unk, as LLaVA-Rad's v1 training), a LlavaProcessor, `adapter/` (the LoRA as a PEFT
adapter on the new module names; absent with merge=True) and `chexbench_conversion.json` (input sha256s, options),
written last in a temporary folder that is then renamed onto `out`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from chexbench_common.checkpoints import read_state_dict
from chexbench_common.device import DTYPES
from chexbench_common.errors import BadInputError, MissingResourceError
from chexbench_common.hashing import sha256_file
from chexbench_common.progress import track

from . import __version__
from . import layout as L

log = logging.getLogger(__name__)
RECORD = "chexbench_conversion.json"
ADAPTER_DIR = "adapter"
HEAD_DIM = 64  # every timm ViT-S/B/L/g (DINOv2 included) uses 64-wide heads; heads cannot be read from tensors
TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
_HINT = "point --llava-rad at LLaVA-Rad's checkpoint folder and --vicuna at the Vicuna-7B v1.5 folder"


@dataclass
class Inputs:
    """Every input file of a conversion, found in the two folders."""

    adapter: Path
    adapter_config: Path
    non_lora: Path
    config: Path
    vision_checkpoint: Path
    vicuna_config: Path
    vicuna_weights: list[Path]
    extra: list[Path] = field(default_factory=list)  # hashed for identity, read by transformers (tokenizer, ...)

    def files(self) -> dict[str, Path]:
        named = {
            "adapter": self.adapter,
            "adapter_config": self.adapter_config,
            "non_lora_trainables": self.non_lora,
            "config": self.config,
            "vision_checkpoint": self.vision_checkpoint,
            "vicuna_config": self.vicuna_config,
        }
        named |= {f"vicuna/{p.name}": p for p in self.vicuna_weights + self.extra}
        return named


@dataclass
class ConvertResult:
    out: Path
    reused: bool
    record: dict


def _file(folder: Path, name: str, what: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise MissingResourceError(f"{path} does not exist ({what}): {_HINT}")
    return path


def locate_inputs(llava_rad: Path, vicuna: Path) -> Inputs:
    """The input files, or one line naming the first missing one (exit 5)."""
    for folder, what in ((llava_rad, "LLaVA-Rad checkpoint folder"), (vicuna, "Vicuna folder")):
        if not folder.is_dir():
            raise MissingResourceError(f"{folder} is not a folder ({what}): {_HINT}")
    config = _file(llava_rad, "config.json", "LLaVA-Rad's config")
    adapter = next(
        (p for p in (llava_rad / "adapter_model.bin", llava_rad / "adapter_model.safetensors") if p.is_file()), None
    )
    if adapter is None:
        raise MissingResourceError(f"{llava_rad / 'adapter_model.bin'} does not exist (LLaVA-Rad's LoRA): {_HINT}")
    vision_name = Path(_read_json(config).get("mm_vision_tower_checkpoint") or "biomedclipcxr_518_checkpoint.pt").name
    weights = sorted(vicuna.glob("*.safetensors")) or sorted(
        p for p in vicuna.glob("*.bin") if p.name.startswith("pytorch_model")
    )
    if not weights:
        raise MissingResourceError(f"{vicuna} holds no *.safetensors or pytorch_model*.bin weights: {_HINT}")
    tokenizer = [vicuna / n for n in TOKENIZER_FILES if (vicuna / n).is_file()]
    if not any(p.name in ("tokenizer.model", "tokenizer.json") for p in tokenizer):
        raise MissingResourceError(f"{vicuna / 'tokenizer.model'} does not exist (Vicuna's tokenizer): {_HINT}")
    extra = tokenizer + [p for p in (vicuna / "generation_config.json",) if p.is_file()]
    return Inputs(
        adapter=adapter,
        adapter_config=_file(llava_rad, "adapter_config.json", "LLaVA-Rad's LoRA config"),
        non_lora=_file(llava_rad, "non_lora_trainables.bin", "LLaVA-Rad's projector"),
        config=config,
        vision_checkpoint=_file(llava_rad, vision_name, "LLaVA-Rad's open_clip image tower checkpoint"),
        vicuna_config=_file(vicuna, "config.json", "Vicuna's config"),
        vicuna_weights=weights,
        extra=extra,
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path} is not readable JSON ({exc})") from None


def _check_llava_rad_config(path: Path, vision_hidden: int) -> None:
    """The architecture choices the map assumes, as LLaVA-Rad's config.json states them."""
    config = _read_json(path)
    expected = {"mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2, "mm_hidden_size": vision_hidden}
    optional = {"mm_vision_select_feature": "patch", "mm_use_im_start_end": False}
    for key, value in expected.items():
        if config.get(key) != value:
            raise BadInputError(f"{path}: {key} is {config.get(key)!r}; this converter maps {key} = {value!r} only")
    for key, value in optional.items():
        if key in config and config[key] != value:
            raise BadInputError(f"{path}: {key} is {config[key]!r}; this converter maps {key} = {value!r} only")


def input_record(inputs: Inputs, merge: bool, dtype: str, vision_heads: int | None) -> dict:
    """What identifies a conversion: options, mapping version and the sha256 of every input file."""
    files = inputs.files()
    hashes = {
        name: {"path": str(path), "sha256": sha256_file(path)}
        for name, path in track(list(files.items()), desc="hashing inputs", unit="file", every_n=0)
    }
    return {
        "tool": "chexbench-llava-convert convert",
        "tool_version": __version__,
        "mapping_version": L.MAPPING_VERSION,
        "merge": merge,
        "dtype": dtype,
        "vision_heads": vision_heads,
        "inputs": hashes,
    }


def _identity(record: dict) -> dict:
    return {
        "mapping_version": record.get("mapping_version"),
        "merge": record.get("merge"),
        "dtype": record.get("dtype"),
        "vision_heads": record.get("vision_heads"),
        "inputs": {k: v.get("sha256") for k, v in (record.get("inputs") or {}).items()},
    }


def _complete(out: Path, record: dict) -> bool:
    """Every file the conversion wrote is still there with its size."""
    outputs = record.get("outputs") or {}
    return bool(outputs) and all(
        (out / name).is_file() and (out / name).stat().st_size == size for name, size in outputs.items()
    )


def _existing_record(out: Path) -> dict | None:
    """The record of a finished conversion at `out`, None if `out` is absent; refuses a folder that is not one."""
    if not out.exists():
        return None
    record_path = out / RECORD
    if not record_path.is_file():
        if out.is_dir() and not any(out.iterdir()):
            return None
        raise BadInputError(f"{out} exists and is not a chexbench conversion (no {RECORD}); choose another --out")
    try:
        return json.loads(record_path.read_text())
    except json.JSONDecodeError:
        return {}


def convert(
    llava_rad: str | Path,
    vicuna: str | Path,
    out: str | Path,
    *,
    merge: bool = False,
    dtype: str = "bfloat16",
    vision_heads: int | None = None,
) -> ConvertResult:
    """Convert (or reuse an identical earlier conversion); returns where and whether it was reused."""
    if dtype not in DTYPES:
        raise BadInputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    llava_rad, vicuna, out = Path(llava_rad), Path(vicuna), Path(out)
    inputs = locate_inputs(llava_rad, vicuna)
    record = input_record(inputs, merge, dtype, vision_heads)
    previous = _existing_record(out)
    if previous is not None and _identity(previous) == _identity(record) and _complete(out, previous):
        log.info("%s is an up-to-date conversion of the same inputs; reused", out)
        return ConvertResult(out, True, previous)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; give the folder the permissions mkdir would
    try:
        record |= _write_conversion(inputs, tmp, merge, dtype, vision_heads)
        record["outputs"] = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in tmp.rglob("*") if p.is_file()}
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        _replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return ConvertResult(out, False, record)


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished folder onto `out`; an old conversion is moved aside first and deleted after."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def _write_conversion(inputs: Inputs, tmp: Path, merge: bool, dtype: str, vision_heads: int | None) -> dict:
    """Read, map, check and save everything into `tmp`; returns what the record adds (sizes, key accounting)."""
    import torch
    from transformers import GenerationConfig, LlavaForConditionalGeneration

    target = getattr(torch, dtype)
    clip = read_state_dict(inputs.vision_checkpoint, "open_clip checkpoint", _HINT)
    trunk, clip_unused = L.open_clip_trunk(clip, inputs.vision_checkpoint)
    dims = L.vision_dims(trunk, inputs.vision_checkpoint)
    heads = vision_heads or dims.hidden // HEAD_DIM
    if heads < 1 or dims.hidden % heads:
        raise BadInputError(
            f"{inputs.vision_checkpoint}: hidden size {dims.hidden} is not divisible into {heads} heads; "
            "pass --vision-heads"
        )
    _check_llava_rad_config(inputs.config, dims.hidden)
    tokenizer, text_config = _tokenizer_and_text_config(inputs.vicuna_config)
    old_vocab = text_config.vocab_size - 1
    config = _llava_config(dims, heads, text_config, image_token_id=old_vocab)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    state = {k: v.to(target) for k, v in L.map_vision(trunk, dims, inputs.vision_checkpoint).items()}
    _check_shapes(state, expected, L.VISION_PREFIX, inputs.vision_checkpoint)
    projector = L.map_projector(read_state_dict(inputs.non_lora, "LLaVA-Rad projector", _HINT), inputs.non_lora)
    _check_shapes(projector, expected, L.PROJECTOR_PREFIX, inputs.non_lora)
    state |= {k: v.to(target) for k, v in projector.items()}

    lora, scale, lora_config = _read_lora(inputs)
    language, ignored = _map_language(inputs, lora, scale if merge else None, target, expected, old_vocab)
    state |= language
    model.load_state_dict(state, strict=True, assign=True)
    model.save_pretrained(tmp)
    del model, state

    from .processor import build_processor

    build_processor(tokenizer, dims.image_size, dims.patch).save_pretrained(tmp)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=[old_vocab],
    ).save_pretrained(tmp)
    if not merge:
        _save_adapter(tmp / ADAPTER_DIR, lora, lora_config, target)
    return {
        "image_token_id": old_vocab,
        "image_size": dims.image_size,
        "patch_size": dims.patch,
        "num_image_tokens": dims.num_patches,
        "vision_heads_used": heads,
        "lora": {
            "r": lora_config["r"],
            "alpha": lora_config["lora_alpha"],
            "modules": len(lora),
            "kept_as": "merged" if merge else f"{ADAPTER_DIR}/",
        },
        "ignored_input_keys": {"vision_checkpoint": sorted(clip_unused), "vicuna": ignored},
    }


def _tokenizer_and_text_config(vicuna_config: Path):
    """Vicuna's tokenizer with `<image>` appended (id = old vocab size; pad = unk as LLaVA-Rad's v1 training) and
    its LlamaConfig with the vocabulary grown by that one token."""
    from transformers import AutoConfig, AutoTokenizer

    vicuna = vicuna_config.parent
    try:
        text_config = AutoConfig.from_pretrained(vicuna)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{vicuna_config}: not a transformers config ({str(exc).splitlines()[0]})") from None
    if text_config.model_type != "llama":
        raise BadInputError(f"{vicuna_config}: model_type is {text_config.model_type!r}, not llama (Vicuna)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(vicuna)
    except ImportError as exc:  # a tokenizer.model-only folder needs sentencepiece + protobuf to convert
        raise MissingResourceError(
            f"{vicuna}: cannot load the tokenizer ({exc}); install sentencepiece and protobuf"
        ) from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{vicuna}: cannot load the tokenizer ({str(exc).splitlines()[0]})") from None
    old_vocab = text_config.vocab_size
    if len(tokenizer) != old_vocab:
        raise BadInputError(
            f"{vicuna}: the tokenizer has {len(tokenizer)} tokens but config.json says vocab_size {old_vocab}"
        )
    tokenizer.add_special_tokens({"additional_special_tokens": [L.IMAGE_TOKEN]})
    if tokenizer.convert_tokens_to_ids(L.IMAGE_TOKEN) != old_vocab:
        raise BadInputError(f"{vicuna}: {L.IMAGE_TOKEN} is already a token of the tokenizer; expected plain Vicuna")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    text_config.vocab_size = old_vocab + 1
    return tokenizer, text_config


def _llava_config(dims: L.VisionDims, heads: int, text_config, image_token_id: int):
    """LlavaConfig: a Dinov2 tower as timm's DINOv2 ViT (eps 1e-6, exact GELU, layer scale, qkv bias), features from
    hidden state -2 without CLS, the mlp2x_gelu projector, Vicuna as the text model."""
    from transformers import Dinov2Config, LlavaConfig

    vision_config = Dinov2Config(
        hidden_size=dims.hidden,
        num_hidden_layers=dims.layers,
        num_attention_heads=heads,
        mlp_ratio=dims.mlp_ratio,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        image_size=dims.image_size,
        patch_size=dims.patch,
        num_channels=dims.channels,
        qkv_bias=True,
        layerscale_value=1.0,
        use_swiglu_ffn=False,
    )
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=image_token_id,
        image_seq_length=dims.num_patches,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        multimodal_projector_bias=True,
        tie_word_embeddings=False,
    )


def _check_shapes(state: dict, expected: dict, prefixes: str | tuple[str, ...], path: Path) -> None:
    """Every model tensor under `prefixes` present in `state` with its shape, nothing else in `state`."""
    missing = sorted(k for k in expected if k.startswith(prefixes) and k not in state)
    if missing:
        raise BadInputError(
            f"{path}: {len(missing)} tensors the model needs are missing, first {missing[0]} (converted name)"
        )
    for key, tensor in state.items():
        if key not in expected:
            raise BadInputError(f"{path}: tensor mapped to {key} has no place in LlavaForConditionalGeneration")
        if tuple(tensor.shape) != expected[key]:
            raise BadInputError(
                f"{path}: tensor for {key} has shape {tuple(tensor.shape)}, the model needs "
                f"{expected[key]} (vision/text sizes of the two folders disagree?)"
            )


def _read_lora(inputs: Inputs) -> tuple[dict[str, dict], float, dict]:
    """{vicuna module: {"A": tensor, "B": tensor, "key": original key}}, the scale α/r and the adapter config."""
    config = _read_json(inputs.adapter_config)
    for key in ("r", "lora_alpha"):
        if not isinstance(config.get(key), int | float) or config[key] <= 0:
            raise BadInputError(f"{inputs.adapter_config}: {key} is {config.get(key)!r}, not a positive number")
    if config.get("bias", "none") != "none":
        raise BadInputError(f"{inputs.adapter_config}: bias is {config['bias']!r}; only LoRA without bias is mapped")
    if config.get("use_rslora") or config.get("use_dora"):
        raise BadInputError(f"{inputs.adapter_config}: rsLoRA/DoRA adapters are not LLaVA-Rad's; not mapped")
    targets = config.get("target_modules")
    state = read_state_dict(inputs.adapter, "LLaVA-Rad LoRA adapter", _HINT)
    lora: dict[str, dict] = {}
    for key, tensor in state.items():
        parsed = L.lora_key(key, inputs.adapter)
        if isinstance(targets, list) and parsed.target not in targets:
            raise BadInputError(
                f"{inputs.adapter}: key {key!r} adapts {parsed.target}, which adapter_config.json's "
                f"target_modules {targets} does not list"
            )
        entry = lora.setdefault(parsed.module, {"key": key})
        entry[parsed.part] = tensor
    for module, entry in lora.items():
        for part in ("A", "B"):
            if part not in entry:
                raise BadInputError(f"{inputs.adapter}: {module} has no lora_{part} tensor (key {entry['key']!r})")
        if entry["A"].shape[0] != config["r"] or entry["B"].shape[1] != config["r"]:
            raise BadInputError(
                f"{inputs.adapter}: {entry['key']}: LoRA shapes {tuple(entry['A'].shape)} / "
                f"{tuple(entry['B'].shape)} do not have rank r = {config['r']}"
            )
    if not lora:
        raise BadInputError(f"{inputs.adapter}: no LoRA tensors")
    return lora, config["lora_alpha"] / config["r"], config


def _read_vicuna_shard(path: Path) -> dict:
    if path.suffix == ".safetensors":
        return read_state_dict(path, "Vicuna weights", _HINT)
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise BadInputError(f"Vicuna weights {path} cannot be read ({type(exc).__name__}: {exc})") from None


def _map_language(inputs, lora, merge_scale, target, expected, old_vocab) -> tuple[dict, list[str]]:
    """Vicuna's tensors under their new names; `<image>` rows appended as zeros; LoRA merged if merge_scale."""
    import torch

    out, ignored, seen_modules = {}, [], set()
    for path in track(inputs.vicuna_weights, desc="language model shards", unit="shard"):
        for key, tensor in _read_vicuna_shard(path).items():
            if key.endswith(L.LANGUAGE_UNUSED_SUFFIX):
                ignored.append(key)
                continue
            new = L.language_key(key, path)
            if new in out:
                raise BadInputError(f"{path}: key {key!r} appears in two Vicuna shards")
            module = key.removesuffix(".weight")
            if module in lora:
                seen_modules.add(module)
                entry = lora[module]
                a, b = entry["A"], entry["B"]
                if a.shape[1] != tensor.shape[1] or b.shape[0] != tensor.shape[0]:
                    raise BadInputError(
                        f"{inputs.adapter}: {entry['key']}: LoRA shapes {tuple(a.shape)} / "
                        f"{tuple(b.shape)} do not fit {key} {tuple(tensor.shape)}"
                    )
                if merge_scale is not None:
                    tensor = tensor.float() + merge_scale * (b.float() @ a.float())
            if new in (f"{L.LANGUAGE_PREFIX}embed_tokens.weight", "lm_head.weight"):
                if tensor.shape[0] != old_vocab:
                    raise BadInputError(f"{path}: {key} has {tensor.shape[0]} rows, config vocab_size is {old_vocab}")
                tensor = torch.cat([tensor, tensor.new_zeros(1, tensor.shape[1])])
            out[new] = tensor.to(target)
    _check_shapes(out, expected, (L.LANGUAGE_PREFIX, "lm_head."), inputs.vicuna_config.parent)
    unmatched = sorted(set(lora) - seen_modules)
    if unmatched:
        raise BadInputError(
            f"{inputs.adapter}: LoRA target {lora[unmatched[0]]['key']!r} not found in the Vicuna "
            f"weights ({len(unmatched)} such targets)"
        )
    return out, ignored


def _save_adapter(folder: Path, lora: dict, config: dict, target) -> None:
    """The LoRA as a PEFT adapter of the converted model: same tensors, keys on the new module names."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    targets = sorted({module.rsplit(".", 1)[1] for module in lora})
    LoraConfig(
        r=config["r"],
        lora_alpha=config["lora_alpha"],
        lora_dropout=config.get("lora_dropout", 0.0),
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=L.lora_target_regex(targets),
    ).save_pretrained(folder)
    tensors = {
        L.peft_key(module, part): entry[part].to(target).contiguous()
        for module, entry in lora.items()
        for part in ("A", "B")
    }
    save_file(tensors, folder / "adapter_model.safetensors", metadata={"format": "pt"})
