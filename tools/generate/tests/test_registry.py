import json

import pytest
from chexbench_common.errors import BadInputError
from chexbench_generate.registry import REGISTRY, get_model

# The original CheXGenBench's per-model constants, from its generation scripts (tools/generate/README.md, *Models*):
# name: pipeline, steps, guidance, size, dtype, call arguments.
EXPECTED = {
    "SD-V1-4": ("StableDiffusionPipeline", 50, 7.5, 512, "float32", {}),
    "SD-V1-5": ("StableDiffusionPipeline", 50, 7.5, 512, "float32", {}),
    "SD-V2": ("StableDiffusionPipeline", 50, 7.5, 512, "float32", {}),
    "SD-V2-1": ("StableDiffusionPipeline", 50, 7.5, 512, "float32", {}),
    "SD-V3-5": ("StableDiffusion3Pipeline", 40, 4.5, 1024, "float16", {"max_sequence_length": 512}),
    "pixart_sigma": ("PixArtSigmaPipeline", 20, 4.5, 512, "float16", {}),
    "sana": ("SanaPipeline", 20, 4.5, 512, "float16", {}),
    "lumina": ("Lumina2Pipeline", 50, 4.0, 1024, "bfloat16", {"cfg_trunc_ratio": 0.25, "cfg_normalization": True}),
    "flux": ("FluxPipeline", 50, 3.5, 1024, "bfloat16", {}),
    "radedit": ("StableDiffusionPipeline", 100, 7.5, 512, "float32", {}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_defaults_match_the_original(name):
    pipeline, steps, guidance, size, dtype, call_kwargs = EXPECTED[name]
    spec = REGISTRY[name]
    assert (spec.pipeline, spec.steps, spec.guidance, spec.height, spec.width, spec.dtype) == (
        pipeline,
        steps,
        guidance,
        size,
        size,
        dtype,
    )
    assert call_kwargs.items() <= spec.call_kwargs.items()


def test_registry_has_exactly_the_benchmark_models():
    assert set(REGISTRY) == set(EXPECTED)
    assert {n for n, s in REGISTRY.items() if s.assembly == "lora"} == {"SD-V3-5", "lumina", "flux"}


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(BadInputError) as err:
        get_model("dalle")
    assert all(name in str(err.value) for name in REGISTRY)
    with pytest.raises(BadInputError, match="import"):
        get_model("llm-cxr")
    assert get_model("SANA") is REGISTRY["sana"]


def test_models_command_lists_every_model_with_its_defaults(cli):
    result = cli("models")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert set(EXPECTED) | {"LLM-CXR"} == set(lines)
    assert "1024x1024" in lines["flux"] and " 50 " in lines["flux"] and "3.5" in lines["flux"]
    assert "cfg_trunc_ratio=0.25" in lines["lumina"]
    assert "import" in lines["LLM-CXR"]
    data = json.loads(cli("models", "--json").output)
    by_name = {m["name"]: m for m in data["models"]}
    assert by_name["radedit"]["steps"] == 100 and by_name["radedit"]["components"]["unet"] == "unet"
    assert by_name["SD-V3-5"]["lora_file"] == "sd3-5_medium_lora.safetensors"
