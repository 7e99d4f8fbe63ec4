"""Find and check model files, then assemble a diffusers pipeline from local paths only (never the Hub)."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

from chexbench_common.checkpoints import check_safetensors, load_pretrained
from chexbench_common.errors import BadInputError, MissingResourceError
from chexbench_common.hashing import sha256_file

from .registry import ModelSpec

LORA_ADAPTER = "chexbench"
RADEDIT_TOKENS = 128  # RadEdit's CXR-BERT tokenizer length (capped at the encoder's position limit)
_SMALL_FILE = 1 << 20


@dataclass(frozen=True)
class ModelFiles:
    """Checked local paths of one registry model."""

    spec: ModelSpec
    model_path: Path
    lora: Path | None = None
    components: dict = field(default_factory=dict)

    def identity(self) -> dict:
        """What the weights are: folder fingerprints (see folder_fingerprint) and the LoRA's full sha256."""
        out = {"model_path": str(self.model_path), "model_fingerprint": folder_fingerprint(self.model_path)}
        if self.lora is not None:
            out.update(lora=str(self.lora), lora_sha256=sha256_file(self.lora))
        for name, path in sorted(self.components.items()):
            out[f"{name}_fingerprint"] = folder_fingerprint(path)
        return out


def folder_fingerprint(folder: Path) -> str:
    """sha256 over every file's relative path, size and content (sampled for files over 1 MiB): reads a few MB per
    weight file, yet tells apart checkpoints of identical size (e.g. two epochs of one fine-tune)."""
    digest = hashlib.sha256()
    # a .cache folder *inside* the model folder (hub download state) is not the weights; one above it (a model
    # kept in ~/.cache/huggingface) is no reason to skip anything
    files = (p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts)
    for path in sorted(files):
        size = path.stat().st_size
        content = sha256_file(path) if size <= _SMALL_FILE else _sampled_sha256(path, size)
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0{content}\n".encode())
    return digest.hexdigest()


def _sampled_sha256(path: Path, size: int, samples: int = 16, chunk: int = 1 << 16) -> str:
    """sha256 of `samples` evenly spaced chunks plus the file's first and last MiB."""
    digest = hashlib.sha256()
    offsets = [0, max(0, size - _SMALL_FILE)] + [size * i // samples for i in range(1, samples)]
    with open(path, "rb") as fh:
        for offset in offsets:
            fh.seek(offset)
            digest.update(fh.read(_SMALL_FILE if offset in offsets[:2] else chunk))
    return digest.hexdigest()


def locate(
    spec: ModelSpec, model_path: str | Path, lora: str | Path | None = None, components: dict[str, str] | None = None
) -> ModelFiles:
    """Check that every file the model needs is where it is expected; MissingResourceError naming it otherwise."""
    model_path = Path(model_path)
    components = dict(components or {})
    if not model_path.is_dir():
        raise MissingResourceError(f"{spec.name}: model folder {model_path} does not exist ({_expected(spec)})")
    if spec.assembly != "radedit" and components:
        raise BadInputError(f"{spec.name} takes no --component (only radedit is assembled from components)")
    if spec.assembly != "lora" and lora is not None:
        raise BadInputError(f"{spec.name} takes no --lora; LoRA models: SD-V3-5, lumina, flux")
    if spec.assembly == "radedit":
        files = ModelFiles(spec, model_path, components=_radedit_components(spec, model_path, components))
    else:
        _check_pipeline_folder(spec, model_path)
        files = ModelFiles(spec, model_path, lora=_find_lora(spec, lora) if spec.assembly == "lora" else None)
    for path in {model_path, *files.components.values(), *([files.lora] if files.lora else [])}:
        check_safetensors(path, spec.name)  # a truncated copy is named now, before any output
    return files


def _expected(spec: ModelSpec) -> str:
    if spec.assembly == "radedit":
        return "expected a folder with unet/ (and vae/, text_encoder/ unless given with --component)"
    return f"expected a diffusers {spec.pipeline} folder with model_index.json"


def _check_pipeline_folder(spec: ModelSpec, folder: Path) -> None:
    index = folder / "model_index.json"
    if not index.is_file():
        raise MissingResourceError(
            f"{spec.name}: {index} not found ({_expected(spec)}, as saved by save_pretrained "
            "or downloaded from the Hub)"
        )
    try:
        meta = json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise MissingResourceError(f"{spec.name}: {index} is not valid JSON: {exc}") from None
    found = meta.get("_class_name")
    if found != spec.pipeline:
        raise BadInputError(f"{spec.name}: {folder} holds a {found}, but this model needs a {spec.pipeline} folder")
    components = [k for k, v in meta.items() if not k.startswith("_") and isinstance(v, list) and v[0] is not None]
    for name in components:
        if not (folder / name).is_dir():
            raise MissingResourceError(
                f"{spec.name}: {folder / name}/ is missing (model_index.json lists a {name} component); copy the "
                "complete pipeline folder"
            )


def _find_lora(spec: ModelSpec, lora: str | Path | None) -> Path:
    if lora is None:
        raise MissingResourceError(
            f"{spec.name} is a base model plus a LoRA: pass --lora with the LoRA file "
            f"({spec.lora_file} in the original release)"
        )
    lora = Path(lora)
    if lora.is_dir():
        lora = lora / spec.lora_file
    if not lora.is_file():
        raise MissingResourceError(
            f"{spec.name}: LoRA file {lora} not found (expected the {spec.lora_file} "
            "safetensors file, or a folder holding it)"
        )
    return lora


def _radedit_components(spec: ModelSpec, model_path: Path, given: dict[str, str]) -> dict[str, Path]:
    unknown = sorted(set(given) - set(spec.components))
    if unknown:
        raise BadInputError(
            f"unknown component(s) {', '.join(unknown)}; radedit components: {', '.join(spec.components)}"
        )
    paths = {name: Path(given[name]) if name in given else model_path / sub for name, sub in spec.components.items()}
    if "tokenizer" not in given and "text_encoder" in given:
        paths["tokenizer"] = paths["text_encoder"]
    for name, path in paths.items():
        marker = "config.json" if name != "tokenizer" else "tokenizer_config.json"
        if not (path / marker).is_file():
            raise MissingResourceError(
                f"radedit: {name} folder {path} has no {marker} (give it with --component {name}=PATH)"
            )
    return paths


def check_call_kwargs(spec: ModelSpec, call_kwargs: dict) -> None:
    """Refuse pipeline arguments the pipeline does not take, before anything is loaded or written."""
    import diffusers

    accepted = inspect.signature(getattr(diffusers, spec.pipeline).__call__).parameters
    unknown = sorted(set(call_kwargs) - set(accepted))
    if unknown:
        raise BadInputError(f"{spec.pipeline} takes no argument(s) {', '.join(unknown)}")


def load_pipeline(files: ModelFiles, dtype: str, device):
    """Build the pipeline on `device` with weights in `dtype`; loading errors become MissingResourceError."""
    from chexbench_common.device import torch_dtype

    _quiet_libraries()
    pipe = load_pretrained(
        files.spec.name, files.model_path, lambda: _ASSEMBLERS[files.spec.assembly](files, torch_dtype(dtype))
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _quiet_libraries() -> None:
    """Our own progress and truncation report replace the libraries' per-batch bars and warnings."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _pretrained(files: ModelFiles, dtype):
    import diffusers

    cls = getattr(diffusers, files.spec.pipeline)
    return cls.from_pretrained(files.model_path, dtype=dtype, **files.spec.load_kwargs)


def _with_lora(files: ModelFiles, dtype):
    pipe = _pretrained(files, dtype)
    pipe.load_lora_weights(str(files.lora.parent), weight_name=files.lora.name, adapter_name=LORA_ADAPTER)
    return pipe


def _radedit(files: ModelFiles, dtype):
    """RadEdit's published recipe: its UNet, the SDXL VAE and BioViL-T's CXR-BERT in a StableDiffusionPipeline."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import AutoModel, AutoTokenizer

    paths = files.components
    # trust_remote_code: BioViL-T's CXR-BERT class ships as code inside its (local, user-provided) model folder.
    text_encoder = AutoModel.from_pretrained(paths["text_encoder"], trust_remote_code=True, dtype=dtype)
    max_tokens = min(RADEDIT_TOKENS, int(text_encoder.config.max_position_embeddings))
    tokenizer = AutoTokenizer.from_pretrained(paths["tokenizer"], model_max_length=max_tokens, trust_remote_code=True)
    scheduler = DDIMScheduler(
        beta_schedule="linear",
        clip_sample=False,
        prediction_type="epsilon",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(paths["vae"], dtype=dtype),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=UNet2DConditionModel.from_pretrained(paths["unet"], dtype=dtype),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


_ASSEMBLERS = {"pretrained": _pretrained, "lora": _with_lora, "radedit": _radedit}
