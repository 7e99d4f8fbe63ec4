"""The import structure of our packages: the contract (chexbench_schema) imports nothing of ours, the runtime
(chexbench_common) only the contract, a stage or tool only those two (and its own folder's other package, such as a
backend for an isolated environment), never another stage, and no package imports back up into another.

Drawn from every import in the sources (module top and function bodies alike, `importlib.import_module` with a
literal name too), and for the contract also from what an import really loads, in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT, RUNTIME = "chexbench_schema", "chexbench_common"
# what each layer may import (besides itself); every other package of ours is a stage or a tool
ALLOWED = {CONTRACT: set(), RUNTIME: {CONTRACT}}
ABOVE_STAGES = {CONTRACT, RUNTIME}


def _packages() -> dict[str, Path]:
    """Import name -> source folder of every package of ours (shared_schema/src/*, and every src/* under tools/, a
    stage's second package such as an isolated environment's included)."""
    found = {}
    for src in [ROOT / "shared_schema" / "src", *sorted((ROOT / "tools").glob("**/src"))]:
        for package in src.iterdir():
            if (package / "__init__.py").is_file():
                found[package.name] = package
    return found


PACKAGES = _packages()


def _same_stage(package: str) -> set[str]:
    """The other packages of the tools/<name> folder `package` lives in (one stage, e.g. its legacy backend)."""
    folder = PACKAGES[package].relative_to(ROOT).parts[:2]
    return {other for other, path in PACKAGES.items() if path.relative_to(ROOT).parts[:2] == folder} - {package}


def imported_modules(tree: ast.AST) -> set[str]:
    """Every absolute module name an AST imports: import/from statements anywhere, and import_module("literal")."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith("."):
                names.add(first.value)
    return names


def ours_imported_by(package: str) -> dict[str, str]:
    """Other packages of ours that `package` imports -> the first file importing each."""
    found = {}
    for path in sorted(PACKAGES[package].rglob("*.py")):
        for name in sorted(imported_modules(ast.parse(path.read_text()))):
            top = name.split(".")[0]
            if top != package and (top in PACKAGES or top.startswith("chexbench")):
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_package_of_ours_is_seen():
    assert {CONTRACT, RUNTIME} <= set(PACKAGES)
    stages = {p.parent.name.replace("-", "_") for p in (ROOT / "tools").glob("*/stage.yml")}
    assert {f"chexbench_{s}" for s in stages} <= set(PACKAGES)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_each_package_imports_only_the_layers_below_it(package):
    allowed = ALLOWED.get(package, ABOVE_STAGES | _same_stage(package))
    wrong = {name: where for name, where in ours_imported_by(package).items() if name not in allowed}
    assert not wrong, f"{package} imports {wrong}; it may import only {sorted(allowed) or 'nothing of ours'}"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_each_package_declares_the_packages_of_ours_it_imports(package):
    """pip and the images install what the pyproject declares: an import of ours it does not declare breaks there."""
    project = tomllib.loads((PACKAGES[package].parents[1] / "pyproject.toml").read_text())["project"]
    declared = {dep.split(">")[0].split("=")[0].strip().lower().replace("-", "_") for dep in project["dependencies"]}
    missing = {name: where for name, where in ours_imported_by(package).items() if name not in declared}
    assert not missing, f"{package} imports {missing} but its pyproject.toml does not declare them"


def test_the_package_graph_has_no_cycle():
    graph = {package: set(ours_imported_by(package)) & set(PACKAGES) for package in PACKAGES}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, f"import cycle: {' -> '.join([*path[path.index(node) :], node])}"
        if node not in done:
            for nxt in sorted(graph[node]):
                visit(nxt, [*path, node])
            done.add(node)

    for package in sorted(graph):
        visit(package, [])


def test_importing_the_whole_contract_loads_nothing_else_of_ours():
    """In a fresh interpreter: every module of chexbench_schema imported, then no other chexbench_* is loaded."""
    modules = sorted(
        f"{CONTRACT}.{'.'.join(p.relative_to(PACKAGES[CONTRACT]).with_suffix('').parts)}".removesuffix(".__init__")
        for p in PACKAGES[CONTRACT].rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('chexbench'))))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert f"{CONTRACT}.io" in loaded and f"{CONTRACT}.export" in loaded
    assert [m for m in loaded if m.split(".")[0] != CONTRACT] == []


def test_the_contract_declares_what_it_imports_and_nothing_of_ours():
    project = tomllib.loads((ROOT / "shared_schema" / "pyproject.toml").read_text())["project"]
    declared = {dep.split(">")[0].split("=")[0].split("<")[0].strip().lower() for dep in project["dependencies"]}
    assert not [d for d in declared if d.startswith("chexbench")], declared
    imported = set()
    for path in PACKAGES[CONTRACT].rglob("*.py"):
        imported |= {name.split(".")[0] for name in imported_modules(ast.parse(path.read_text()))}
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != CONTRACT}
    assert third_party == declared, f"chexbench_schema imports {sorted(third_party)}, declares {sorted(declared)}"


def test_the_checks_see_a_forbidden_import(tmp_path):
    """The checks above can fail: the import forms they read, including a lazy one inside a function."""
    source = (
        "import chexbench_common.errors\n"
        "def f():\n"
        "    from chexbench_embed import cli\n"
        "    return importlib.import_module('chexbench_fidelity.run')\n"
    )
    found = imported_modules(ast.parse(source))
    assert found == {"chexbench_common.errors", "chexbench_embed", "chexbench_fidelity.run"}
