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
