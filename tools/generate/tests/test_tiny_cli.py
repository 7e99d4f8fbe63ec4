import json

from chexbench_generate.cli import main
from chexbench_generate.tiny import FAMILIES
from click.testing import CliRunner


def test_tiny_pipeline_command_writes_a_diffusers_folder(tmp_path):
    result = CliRunner().invoke(main, ["tiny-pipeline", "sana", str(tmp_path / "sana")])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "sana" / "model_index.json").read_text())
    assert index["_class_name"] == "SanaPipeline"
    refused = CliRunner().invoke(main, ["tiny-pipeline", "nope", str(tmp_path / "x")])
    assert refused.exit_code == 2 and all(family in refused.output for family in FAMILIES)
