"""Every registry entry loads through the real loading code and generates at tiny scale; LoRA and RadEdit details."""

import shutil

import numpy as np
import pytest
from chexbench_common.hashing import sha256_file
from chexbench_common.imageio import load_grey
from chexbench_generate.loading import LORA_ADAPTER, load_pipeline, locate
from chexbench_generate.registry import REGISTRY
from chexbench_generate.runner import generate_batch
from chexbench_generate.settings import resolve
from chexbench_generate.tiny import tiny_settings
from chexbench_schema import read_table
from generate_helpers import PROMPT_TEXTS


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_model_generates(name, tiny, tiny_lora, prompts5, tmp_path, cli):
    spec = REGISTRY[name]
    path, config = tiny(spec.family)
    lora = ["--lora", tiny_lora(spec.family)] if spec.assembly == "lora" else []
    result = cli(
        "run",
        "--model",
        name,
        "--model-path",
        path,
        *lora,
        "--config",
        config,
        "--prompts",
        prompts5,
        "--results",
        tmp_path,
        "--limit",
        2,
        "--batch-size",
        2,
    )
    assert result.exit_code == 0, result.output
    gen = tmp_path / name / "default" / "generate"
    table = read_table(gen / "images.parquet", "images")
    assert len(table) == 2 and set(table["dtype"]) == {"float32"} and set(table["steps"]) == {2}
    for row in table.itertuples():
        image = load_grey(gen / "images" / row.path)
        assert image.shape == (64, 64) and image.std() > 0.01  # a real, non-constant 64x64 image
        assert sha256_file(gen / "images" / row.path) == row.sha256
    assert (gen / "_SUCCESS").exists()


def _tiny_call(pipe, family):
    s = resolve(
        REGISTRY[{"sd3": "SD-V3-5", "lumina": "lumina", "flux": "flux"}[family]],
        tiny_settings(family),
        {"batch_size": 1},
    )
    from chexbench_generate.plan import Item

    return np.asarray(generate_batch(pipe, [Item("x-0", "x", PROMPT_TEXTS[1], 0, 7)], s)[0], dtype=np.float64)


@pytest.mark.parametrize("family", ["sd3", "lumina", "flux"])
def test_lora_is_loaded_and_changes_the_output(family, tiny, tiny_lora):
    import diffusers

    spec = REGISTRY[{"sd3": "SD-V3-5", "lumina": "lumina", "flux": "flux"}[family]]
    path, _ = tiny(family)
    with_lora = load_pipeline(locate(spec, path, tiny_lora(family)), "float32", "cpu")
    assert with_lora.get_active_adapters() == [LORA_ADAPTER]
    base = getattr(diffusers, spec.pipeline).from_pretrained(path)
    base.set_progress_bar_config(disable=True)
    diff = np.abs(_tiny_call(with_lora, family) - _tiny_call(base, family)).mean()
    assert diff > 0.05  # mean grey levels: the LoRA weights reach the output
    with_lora.disable_lora()
    assert np.abs(_tiny_call(with_lora, family) - _tiny_call(base, family)).max() == 0


def test_radedit_assembly_uses_ddim_trailing_and_the_given_components(tiny, tmp_path):
    path, _ = tiny("radedit")
    moved = tmp_path / "sdxl-vae"
    shutil.copytree(path / "vae", moved)
    model = tmp_path / "radedit"
    shutil.copytree(path / "unet", model / "unet")
    files = locate(REGISTRY["radedit"], model, components={"vae": moved, "text_encoder": path / "text_encoder"})
    pipe = load_pipeline(files, "float32", "cpu")
    sched = pipe.scheduler.config
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert (
        sched.timestep_spacing,
        sched.beta_schedule,
        sched.steps_offset,
        sched.clip_sample,
        sched.prediction_type,
    ) == ("trailing", "linear", 1, False, "epsilon")
    assert type(pipe.text_encoder).__name__ == "BertModel"
    assert pipe.tokenizer.model_max_length == 16  # 128 in the recipe, capped at the tiny encoder's 16 positions
    assert files.components["tokenizer"] == path / "text_encoder"
