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


def test_tiny_pipeline_command_prints_nothing_but_its_folder_in_a_batch_log(tmp_path):
    """No library bar ("Writing model shards"), no tokenizer-trainer blank lines, no warning."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "CHEXBENCH_PROGRESS": "log", "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    cli = Path(sys.executable).parent / "chexbench-generate"
    done = subprocess.run(
        [str(cli), "tiny-pipeline", "sana", str(tmp_path / "sana")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == f"{tmp_path / 'sana'}\n"  # the tokenizer trainer wrote blank lines
