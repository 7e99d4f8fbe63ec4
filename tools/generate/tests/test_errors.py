"""Each expected failure is one line on stderr, a distinct exit code, and leaves no outputs behind."""

import json
import shutil

import pytest
from generate_helpers import sana_args


def _one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chexbench-generate: error: "), result.output
    return lines[0]


def test_unknown_model_lists_the_known_ones(prompts5, tmp_path, cli):
    line = _one_line_error(
        cli("run", "--model", "imagen", "--model-path", tmp_path, "--prompts", prompts5, "--results", tmp_path / "R"), 3
    )
    assert "unknown model 'imagen'" in line and "SD-V1-4" in line and "radedit" in line
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize(
    "case, code, expected",
    [
        ("no folder", 5, "model folder {base}/missing does not exist"),
        ("no model_index", 5, "{base}/empty/model_index.json not found"),
        ("no component folder", 5, "{base}/broken/transformer/ is missing"),
        ("other pipeline", 3, "holds a StableDiffusionPipeline, but this model needs a SanaPipeline"),
    ],
)
def test_missing_or_wrong_checkpoint_says_what_is_expected_where(case, code, expected, tiny, prompts5, tmp_path, cli):
    base = tmp_path / "models"
    (base / "empty").mkdir(parents=True)
    shutil.copytree(tiny("sana")[0], base / "broken")
    shutil.rmtree(base / "broken" / "transformer")
    path = {
        "no folder": base / "missing",
        "no model_index": base / "empty",
        "no component folder": base / "broken",
        "other pipeline": tiny("sd")[0],
    }[case]
    line = _one_line_error(
        cli("run", "--model", "sana", "--model-path", path, "--prompts", prompts5, "--results", tmp_path / "R"), code
    )
    assert expected.format(base=base) in line
    assert not (tmp_path / "R").exists()


def test_missing_lora_and_component_name_the_expected_file(tiny, prompts5, tmp_path, cli):
    line = _one_line_error(
        cli(
            "run",
            "--model",
            "flux",
            "--model-path",
            tiny("flux")[0],
            "--prompts",
            prompts5,
            "--results",
            tmp_path / "R",
        ),
        5,
    )
    assert "--lora" in line and "flux_lora.safetensors" in line
    line = _one_line_error(
        cli(
            "run",
            "--model",
            "SD-V3-5",
            "--model-path",
            tiny("sd3")[0],
            "--lora",
            tmp_path,
            "--prompts",
            prompts5,
            "--results",
            tmp_path / "R",
        ),
        5,
    )
    assert f"{tmp_path}/sd3-5_medium_lora.safetensors not found" in line
    model = tmp_path / "radedit"
    shutil.copytree(tiny("radedit")[0], model)
    shutil.rmtree(model / "vae")
    line = _one_line_error(
        cli("run", "--model", "radedit", "--model-path", model, "--prompts", prompts5, "--results", tmp_path / "R"), 5
    )
    assert f"vae folder {model}/vae has no config.json" in line and "--component vae=PATH" in line
    assert not (tmp_path / "R").exists()


def test_unknown_pipeline_argument_is_refused_before_any_output(tiny, prompts5, tmp_path, cli):
    line = _one_line_error(cli(*sana_args(tiny, prompts5, tmp_path, "r", "--set", "num_frames=3")), 3)
    assert "SanaPipeline takes no argument(s) num_frames" in line
    assert not (tmp_path / "sana").exists()


def test_out_of_memory_suggests_a_smaller_batch_and_writes_no_table(tiny, prompts5, tmp_path, cli, monkeypatch):
    import torch
    from chexbench_generate import loading

    real_load = loading.load_pipeline

    def load_with_a_full_gpu(*args, **kwargs):
        pipe = real_load(*args, **kwargs)

        def forward(*a, **k):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        pipe.transformer.forward = forward  # fails deep inside the pipeline, as a real OOM does
        return pipe

    monkeypatch.setattr("chexbench_generate.runner.load_pipeline", load_with_a_full_gpu)
    line = _one_line_error(cli(*sana_args(tiny, prompts5, tmp_path, "r", "--batch-size", 4)), 6)
    assert "out of memory at batch size 4" in line and "--batch-size 2" in line
    gen = tmp_path / "sana" / "r" / "generate"
    assert not (gen / "images.parquet").exists() and not (gen / "_SUCCESS").exists()
    assert not list(gen.glob("images/*.png"))
    part = json.loads((gen / "parts" / "shard-0-of-1" / "manifest.json").read_text())
    assert part["status"] == "failed" and "out of memory" in part["error"]


def test_a_truncated_safetensors_file_is_named_before_any_output(tiny, prompts5, tmp_path, cli):
    model = tmp_path / "models" / "sana"
    shutil.copytree(tiny("sana")[0], model)
    weights = next(iter(sorted((model / "transformer").glob("*.safetensors"))))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    line = _one_line_error(
        cli("run", "--model", "sana", "--model-path", model, "--prompts", prompts5, "--results", tmp_path / "R"), 5
    )
    assert f"sana: {weights} is damaged (truncated" in line
    assert not (tmp_path / "R").exists()
