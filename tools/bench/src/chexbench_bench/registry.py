"""The model and weights registry (assets/models.yml): resolve entries, check them, pin their sha256."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from chexbench_common.atomic import write_text_atomic
from chexbench_common.errors import BadInputError, MissingResourceError
from chexbench_common.hashing import sha256_path

SECTIONS = ("generators", "bases", "extractors")


@dataclass(frozen=True)
class Asset:
    id: str
    section: str
    source: str
    local_path: str | None
    sha256: str | None
    base: str | None
    components: tuple[tuple[str, str], ...]  # (pipeline component, asset id), e.g. RadEdit's VAE
    licence: str
    gated: bool


def load_registry(path: Path) -> dict[str, Asset]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read the model registry: {str(exc).splitlines()[0]}") from None
    assets = {}
    for section in SECTIONS:
        for asset_id, entry in (raw.get(section) or {}).items():
            assets[asset_id] = Asset(
                id=asset_id,
                section=section,
                source=str(entry.get("source", "")),
                local_path=entry.get("local_path"),
                sha256=entry.get("sha256"),
                base=entry.get("base"),
                components=tuple((entry.get("components") or {}).items()),
                licence=str(entry.get("licence", "")),
                gated=bool(entry.get("gated", False)),
            )
    return assets


def resolve_path(asset: Asset, repo_root: Path) -> Path | None:
    """The local file or folder of an asset; `package:<pkg>/<file>` points inside an installed package."""
    if asset.local_path is None:
        return None
    if asset.local_path.startswith("package:"):
        package, _, relative = asset.local_path[len("package:") :].partition("/")
        spec = importlib.util.find_spec(package)
        return Path(spec.origin).parent / relative if spec and spec.origin else Path(asset.local_path)
    path = Path(asset.local_path)
    return path if path.is_absolute() else repo_root / path


def closure(assets: dict[str, Asset], asset_id: str) -> list[Asset]:
    """The asset and everything it needs (its LoRA base, its required components)."""
    if asset_id not in assets:
        raise BadInputError(f"unknown model {asset_id!r}; known: {', '.join(sorted(assets))}")
    ordered, stack = [], [asset_id]
    while stack:
        current = assets[stack.pop(0)]
        if current not in ordered:
            ordered.append(current)
            stack.extend([current.base] if current.base else [])
            stack.extend(dict.fromkeys(asset for _, asset in current.components))
    return ordered


def check(assets: dict[str, Asset], asset_id: str, repo_root: Path, registry_path: Path) -> list[str]:
    """Verify presence and pinned hashes; raise one problem per missing or mismatching asset, return notes."""
    problems, notes = [], []
    for asset in closure(assets, asset_id):
        path = resolve_path(asset, repo_root)
        if path is None:
            problems.append(f"{asset.id}: has no local weights: {asset.source}")
            continue
        if not path.exists():
            problems.append(f"{asset.id}: expected at {path} ({asset.source}); download it there, see {registry_path}")
            continue
        if asset.sha256 is None:
            notes.append(f"{asset.id}: {path} present but not pinned (chexbench-bench assets pin {asset.id})")
        elif sha256_path(path) != asset.sha256:
            problems.append(
                f"{asset.id}: {path} does not match the pinned sha256 {asset.sha256[:12]}…; "
                "re-download it or re-pin it deliberately"
            )
    if problems:
        raise MissingResourceError("\n".join(problems))
    return notes


def pin(registry_path: Path, asset: Asset, digest: str) -> None:
    """Write `sha256: <digest>` into the asset's block, keeping the file's comments and layout."""
    lines = registry_path.read_text().splitlines(keepends=True)
    header = re.compile(rf"^  {re.escape(asset.id)}:\s*$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        raise BadInputError(f"{registry_path}: no block for {asset.id!r}")
    for i in range(start + 1, len(lines)):
        if not lines[i].startswith("    "):
            break
        if lines[i].lstrip().startswith("sha256:"):
            lines[i] = f"    sha256: {digest}\n"
            write_text_atomic(registry_path, "".join(lines))
            return
    raise BadInputError(f"{registry_path}: the block of {asset.id!r} has no sha256 line")


def shown_path(asset: Asset, repo_root: Path) -> str:
    """The asset's path relative to the repository root when inside it, so the same command line works in
    containers, whose working directory is the repository mounted elsewhere."""
    path = resolve_path(asset, repo_root)
    if path is None:
        raise BadInputError(f"{asset.id} has no local weights: {asset.source}")
    return str(path.relative_to(repo_root)) if path.is_relative_to(repo_root) else str(path)


def generate_args(assets: dict[str, Asset], asset_id: str, repo_root: Path) -> list[str]:
    """The chexbench-generate options that load ASSET_ID from its local paths."""
    asset = assets[asset_id]
    own = shown_path(asset, repo_root)
    if asset.base:
        args = ["--model-path", shown_path(assets[asset.base], repo_root), "--lora", own]
    else:
        args = ["--model-path", own]
    for component, component_asset in asset.components:
        args += ["--component", f"{component}={shown_path(assets[component_asset], repo_root)}"]
    return args
