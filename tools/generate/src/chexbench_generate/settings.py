"""Resolve generation settings: registry defaults, then a YAML/JSON config file, then command-line flags."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from chexbench_common.device import DTYPES
from chexbench_common.errors import BadInputError

from .registry import ModelSpec

DEFAULT_SEED = 42  # the original's seed_everything(42)
DEFAULT_BATCH_SIZE = 8
CONFIG_KEYS = (
    "height",
    "width",
    "steps",
    "guidance",
    "dtype",
    "seed",
    "num_images_per_prompt",
    "batch_size",
    "call_kwargs",
)
# Pipeline arguments set by chexbench-generate itself; they have their own options.
RESERVED_CALL_KWARGS = {
    "prompt": "--prompts",
    "height": "--height",
    "width": "--width",
    "num_inference_steps": "--steps",
    "guidance_scale": "--guidance",
    "generator": "--seed",
    "num_images_per_prompt": "--num-images-per-prompt",
    "output_type": None,
    "latents": None,
    "return_dict": None,
}


@dataclass(frozen=True)
class Settings:
    height: int
    width: int
    steps: int
    guidance: float
    dtype: str
    seed: int
    num_images_per_prompt: int
    batch_size: int
    call_kwargs: dict = field(default_factory=dict)

    def pixel_settings(self) -> dict:
        """The settings that determine an image's pixels (batch size only at float rounding level, so not here)."""
        out = asdict(self)
        del out["batch_size"], out["num_images_per_prompt"]
        return out


def load_config(path: str | Path) -> dict:
    """Read a YAML or JSON mapping of CONFIG_KEYS."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())  # JSON is a subset of YAML
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a config file must be a mapping of {', '.join(CONFIG_KEYS)}")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise BadInputError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(CONFIG_KEYS)}")
    if not isinstance(data.get("call_kwargs", {}), dict):
        raise BadInputError(f"{path}: call_kwargs must be a mapping of pipeline argument -> value")
    return data


def parse_assignments(items: tuple[str, ...] | list[str], option: str = "--set", typed: bool = True) -> dict:
    """KEY=VALUE strings to a dict; typed values are parsed as YAML scalars (4.5 -> float, null -> None)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"{option} {item!r}: expected KEY=VALUE")
        if not typed:
            out[key.strip()] = value
            continue
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def resolve(spec: ModelSpec, config: dict, overrides: dict) -> Settings:
    """Registry defaults <- config file <- command line (None in `overrides` means 'not given')."""
    values = {**spec.defaults(), "seed": DEFAULT_SEED, "num_images_per_prompt": 1, "batch_size": DEFAULT_BATCH_SIZE}
    call_kwargs = dict(values.pop("call_kwargs"))
    call_kwargs.update(config.get("call_kwargs") or {})
    call_kwargs.update(overrides.get("call_kwargs") or {})
    for source in (config, overrides):
        values.update({k: v for k, v in source.items() if k != "call_kwargs" and v is not None})
    settings = Settings(**_typed(values), call_kwargs=call_kwargs)
    _validate(spec, settings)
    return settings


def _typed(values: dict) -> dict:
    try:
        return {
            "height": int(values["height"]),
            "width": int(values["width"]),
            "steps": int(values["steps"]),
            "guidance": float(values["guidance"]),
            "dtype": str(values["dtype"]),
            "seed": int(values["seed"]),
            "num_images_per_prompt": int(values["num_images_per_prompt"]),
            "batch_size": int(values["batch_size"]),
        }
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"invalid generation setting: {exc}") from None


def _validate(spec: ModelSpec, s: Settings) -> None:
    problems = []
    for name in ("height", "width"):
        value = getattr(s, name)
        if value <= 0 or value % spec.size_multiple:
            problems.append(f"{name} {value} must be a positive multiple of {spec.size_multiple} for {spec.name}")
    for name in ("steps", "batch_size", "num_images_per_prompt"):
        if getattr(s, name) < 1:
            problems.append(f"{name} must be at least 1, not {getattr(s, name)}")
    if s.dtype not in DTYPES:
        problems.append(f"dtype {s.dtype!r} is not one of {', '.join(DTYPES)}")
    if not 0 <= s.seed < 2**63:
        problems.append(f"seed {s.seed} must be in [0, 2**63)")
    for key in s.call_kwargs:
        if key in RESERVED_CALL_KWARGS:
            use = RESERVED_CALL_KWARGS[key]
            problems.append(f"call argument {key!r} is set by chexbench-generate" + (f"; use {use}" if use else ""))
    if problems:
        raise BadInputError("; ".join(problems))


def fingerprint(payload: dict) -> str:
    """A short stable hash of a JSON-able mapping (what makes images interchangeable)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
