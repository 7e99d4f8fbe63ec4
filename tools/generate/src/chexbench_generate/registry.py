"""The generator registry: one entry per seed model of the benchmark, with the original's constants as defaults.

Defaults follow CheXGenBench (resolution from the paper table, steps / guidance / dtype / call arguments from its
generation script). Differences on purpose: resolution is always passed explicitly; Sana and PixArt-Σ run without
resolution binning (identical at their native 512 px, and the requested size is then the generated one); PixArt-Σ's
`clean_caption` is off explicitly (the original environment lacked bs4/ftfy, so it was off there too).
LLM-CXR is not a diffusers model: its images come in through `chexbench-generate import`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from chexbench_common.errors import BadInputError

from . import truncation

ASSEMBLIES = ("pretrained", "lora", "radedit")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # pipeline family: sd, sd3, pixart_sigma, sana, lumina, flux, radedit
    pipeline: str  # diffusers pipeline class
    assembly: str  # pretrained: one pipeline folder; lora: base folder + LoRA file; radedit: component folders
    height: int
    width: int
    steps: int
    guidance: float
    dtype: str
    size_multiple: int  # height and width must be multiples of this (VAE factor x patch size)
    budgets: Callable  # (pipe, call_kwargs) -> list[truncation.Budget]
    call_kwargs: Mapping = field(default_factory=dict)
    load_kwargs: Mapping = field(default_factory=dict)
    lora_file: str | None = None  # the LoRA file name of the original release
    components: Mapping = field(default_factory=dict)  # radedit: component -> default sub-folder of --model-path
    source: str = ""

    def __post_init__(self):
        if self.assembly not in ASSEMBLIES:
            raise ValueError(f"{self.name}: unknown assembly {self.assembly!r}")
        object.__setattr__(self, "call_kwargs", MappingProxyType(dict(self.call_kwargs)))
        object.__setattr__(self, "load_kwargs", MappingProxyType(dict(self.load_kwargs)))
        object.__setattr__(self, "components", MappingProxyType(dict(self.components)))

    def defaults(self) -> dict:
        """The overridable generation constants of this entry."""
        return {
            "height": self.height,
            "width": self.width,
            "steps": self.steps,
            "guidance": self.guidance,
            "dtype": self.dtype,
            "call_kwargs": dict(self.call_kwargs),
        }


def _sd(name: str, source: str) -> ModelSpec:
    return ModelSpec(
        name=name, family="sd", pipeline="StableDiffusionPipeline", assembly="pretrained", height=512, width=512,
        steps=50, guidance=7.5, dtype="float32", size_multiple=8, budgets=truncation.clip_budgets,
        load_kwargs={"safety_checker": None, "requires_safety_checker": False}, source=source,
    )  # fmt: skip


_ENTRIES = (
    _sd("SD-V1-4", "full fine-tune of CompVis/stable-diffusion-v1-4"),
    _sd("SD-V1-5", "full fine-tune of runwayml/stable-diffusion-v1-5"),
    _sd("SD-V2", "full fine-tune of stabilityai/stable-diffusion-2-base"),
    _sd("SD-V2-1", "full fine-tune of stabilityai/stable-diffusion-2-1-base"),
    ModelSpec(
        name="SD-V3-5", family="sd3", pipeline="StableDiffusion3Pipeline", assembly="lora", height=1024, width=1024,
        steps=40, guidance=4.5, dtype="float16", size_multiple=16, budgets=truncation.sd3_budgets,
        call_kwargs={"max_sequence_length": 512}, lora_file="sd3-5_medium_lora.safetensors",
        source="stabilityai/stable-diffusion-3.5-medium + MIMIC LoRA (r=32)",
    ),
    ModelSpec(
        name="pixart_sigma", family="pixart_sigma", pipeline="PixArtSigmaPipeline", assembly="pretrained",
        height=512, width=512, steps=20, guidance=4.5, dtype="float16", size_multiple=16,
        budgets=truncation.pixart_budgets,
        call_kwargs={"max_sequence_length": 300, "use_resolution_binning": False, "clean_caption": False},
        load_kwargs={"use_safetensors": True}, source="full fine-tune of PixArt-Sigma-XL-2-512-MS",
    ),
    ModelSpec(
        name="sana", family="sana", pipeline="SanaPipeline", assembly="pretrained", height=512, width=512, steps=20,
        guidance=4.5, dtype="float16", size_multiple=32, budgets=truncation.sana_budgets,
        call_kwargs={"max_sequence_length": 300, "use_resolution_binning": False},
        source="full fine-tune of Sana 0.6B 512px (e.g. raman07/CheXGenBench-Models-Sana-e20)",
    ),
    ModelSpec(
        name="lumina", family="lumina", pipeline="Lumina2Pipeline", assembly="lora", height=1024, width=1024,
        steps=50, guidance=4.0, dtype="bfloat16", size_multiple=16, budgets=truncation.lumina_budgets,
        call_kwargs={"max_sequence_length": 256, "cfg_trunc_ratio": 0.25, "cfg_normalization": True},
        lora_file="lumina2_lora.safetensors", source="Alpha-VLLM/Lumina-Image-2.0 + MIMIC LoRA (r=32)",
    ),
    ModelSpec(
        name="flux", family="flux", pipeline="FluxPipeline", assembly="lora", height=1024, width=1024, steps=50,
        guidance=3.5, dtype="bfloat16", size_multiple=16, budgets=truncation.flux_budgets,
        call_kwargs={"max_sequence_length": 512}, lora_file="flux_lora.safetensors",
        source="black-forest-labs/FLUX.1-dev + MIMIC LoRA (r=32)",
    ),
    ModelSpec(
        name="radedit", family="radedit", pipeline="StableDiffusionPipeline", assembly="radedit", height=512,
        width=512, steps=100, guidance=7.5, dtype="float32", size_multiple=8, budgets=truncation.clip_budgets,
        components={"unet": "unet", "vae": "vae", "text_encoder": "text_encoder", "tokenizer": "text_encoder"},
        source="microsoft/radedit UNet + stabilityai/sdxl-vae + microsoft/BiomedVLP-BioViL-T (CXR-BERT)",
    ),
)  # fmt: skip

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _ENTRIES}

# Models of the benchmark that are not generated here, and how their images enter.
EXTERNAL = {
    "LLM-CXR": "not a diffusers model (12B, 256 px); generate with its own code and bring the images in with "
    "`chexbench-generate import`"
}


def get_model(name: str) -> ModelSpec:
    """The registry entry called `name` (case-insensitive); a BadInputError listing the known names otherwise."""
    by_lower = {key.lower(): spec for key, spec in REGISTRY.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    external = {key.lower(): (key, how) for key, how in EXTERNAL.items()}
    hint = f" ({external[name.lower()][0]} is {external[name.lower()][1]})" if name.lower() in external else ""
    raise BadInputError(f"unknown model {name!r}{hint}; known models: {', '.join(REGISTRY)}")
