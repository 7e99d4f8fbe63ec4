from chexbench_embed.cli import main
from click.testing import CliRunner


def test_tiny_raddino_command_writes_a_loadable_model_folder(tmp_path):
    result = CliRunner().invoke(main, ["tiny-raddino", str(tmp_path / "rd"), "--image-size", "28"])
    assert result.exit_code == 0, result.output
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tmp_path / "rd")
    assert config.model_type == "dinov2" and config.image_size == 28
    assert (tmp_path / "rd" / "preprocessor_config.json").exists()


def test_run_help_names_every_extractor():
    from chexbench_embed.extractors import NAMES

    text = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    assert [name for name in NAMES if name not in text] == []
    assert "radiomics (no weights" in text


def test_tiny_clip_command_writes_a_folder_the_clip_extractor_reads(tmp_path):
    result = CliRunner().invoke(main, ["tiny-clip", str(tmp_path / "clip")])
    assert result.exit_code == 0, result.output
    from chexbench_embed.extractors import build_spec

    spec = build_spec("clip", tmp_path / "clip")
    assert spec.dim == 24 and spec.preprocessing()["output"] == [3, 336, 336]
    assert "random weights (tiny CLIP" in spec.metadata("fp32")["stand_in"]  # fidelity marks its rows
    (tmp_path / "clip" / "STAND_IN").unlink()  # a folder without the marker is taken as real weights
    assert "stand_in" not in build_spec("clip", tmp_path / "clip").metadata("fp32")
