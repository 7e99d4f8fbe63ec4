"""The metric registry: one declaration per metric, unique row names, and the README table printed from it."""

from pathlib import Path

from chexbench_fidelity.metric_registry import REGISTRY, markdown_table

README = Path(__file__).parents[1] / "README.md"


def test_every_row_name_belongs_to_one_metric():
    outputs = [o for m in REGISTRY for o in m.outputs]
    assert len(outputs) == len(set(outputs)) and len({m.name for m in REGISTRY}) == len(REGISTRY)


def test_the_readme_table_is_the_registry():
    text = README.read_text()
    block = text.split("<!-- metric table -->\n", 1)[1].split("\n<!-- end metric table -->", 1)[0]
    assert block == markdown_table()


def test_rows_of_stand_in_weights_say_so(tmp_path):
    import numpy as np
    from chexbench_fidelity.cli import main
    from chexbench_schema import read_table
    from click.testing import CliRunner
    from fidelity_data import correlated, write_emb

    rng = np.random.default_rng(0)
    ids = [f"p{i}" for i in range(30)]
    stand_in = "random weights (tiny CLIP, built by chexbench-embed): the vectors mean nothing"
    real = write_emb(tmp_path / "r.parquet", ids, correlated(rng, 30, 6), "real", "clip", stand_in=stand_in)
    synth = write_emb(tmp_path / "s.parquet", ids, correlated(rng, 30, 6), "synthetic", "clip", stand_in=stand_in)
    args = ["run", "--results", str(tmp_path / "R"), "--model", "m", "--no-cache", "--real", str(real)]
    result = CliRunner().invoke(main, [*args, "--synth", str(synth)])
    assert result.exit_code == 0, result.output
    frame = read_table(tmp_path / "R" / "m" / "default" / "fidelity" / "metrics.parquet", "metrics")
    marked = frame[frame.extractor == "clip"]
    assert len(marked) > 5 and marked.note.str.contains("STAND-IN clip weights").all()
