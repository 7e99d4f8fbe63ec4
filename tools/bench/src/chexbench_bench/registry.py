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

SECTIONS = ("generators", "bases", "extractors", "downstream", "scorers")
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIZE = re.compile(r"^[~≈]?\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?i?B)$", re.IGNORECASE)


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
    repo: str | None = None  # Hugging Face repository id
    revision: str | None = None  # a commit (pinned) or a branch/tag, which fetch resolves and pins
    files: tuple[str, ...] = ()  # a folder asset: the repository files the stage loads (patterns, `a | b`: first found)
    optional_files: tuple[str, ...] = ()  # fetched when the repository has them
    file: str | None = None  # a single-file asset: the repository file stored at local_path
    url: str | None = None  # a single file over HTTPS (not on the hub)
    sha256_prefix: str | None = None  # the publisher's hash prefix (in the file name), checked until pinned
    size: int | str | None = None  # exact bytes (int), or a declared estimate ("≈ 4.8 GB")
    stages: tuple[str, ...] = ()  # the stages of `make bench` that load it (a generator: generate)
    optional: str | None = None  # what a run loses without it
    unverified: str | None = None  # what about its source is not confirmed
    note: str | None = None  # what a user must know to use it (e.g. a conversion before the stage loads it)

    @property
    def fetchable(self) -> bool:
        return bool(self.url or (self.repo and (self.files or self.file)))

    @property
    def kind(self) -> str:
        if self.local_path is None:
            return "none"
        if self.local_path.startswith("package:"):
            return "package"
        return "url" if self.url else "hub" if self.repo else "by hand"


def _entry_error(path: Path, asset_id: str, problem: str) -> BadInputError:
    return BadInputError(f"{path}: {asset_id}: {problem}")


def _strings(path: Path, asset_id: str, entry: dict, key: str) -> tuple[str, ...]:
    value = entry.get(key) or ()
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise _entry_error(path, asset_id, f"{key}: must be a list of strings")
    return tuple(value)


def _asset(path: Path, section: str, asset_id: str, entry: dict) -> Asset:
    asset = Asset(
        id=asset_id,
        section=section,
        source=str(entry.get("source", "")),
        local_path=entry.get("local_path"),
        sha256=entry.get("sha256"),
        base=entry.get("base"),
        components=tuple((entry.get("components") or {}).items()),
        licence=str(entry.get("licence", "")),
        gated=bool(entry.get("gated", False)),
        repo=entry.get("repo"),
        revision=None if entry.get("revision") is None else str(entry["revision"]),
        files=_strings(path, asset_id, entry, "files"),
        optional_files=_strings(path, asset_id, entry, "optional_files"),
        file=entry.get("file"),
        url=entry.get("url"),
        sha256_prefix=None if entry.get("sha256_prefix") is None else str(entry["sha256_prefix"]),
        size=entry.get("size"),
        stages=_strings(path, asset_id, entry, "stages"),
        optional=entry.get("optional"),
        unverified=entry.get("unverified"),
        note=entry.get("note"),
    )
    if asset.sha256 is not None and not (isinstance(asset.sha256, str) and _HEX64.fullmatch(asset.sha256)):
        raise _entry_error(path, asset_id, "sha256: must be 64 hex digits, or null (quote it if YAML reads a number)")
    if asset.repo and asset.url:
        raise _entry_error(path, asset_id, "has both repo: and url:; an asset comes from one place")
    if asset.repo and bool(asset.files) == bool(asset.file):
        raise _entry_error(path, asset_id, "a hub asset declares either files: (a folder) or file: (one file)")
    if asset.fetchable and (asset.local_path is None or asset.local_path.startswith("package:")):
        raise _entry_error(path, asset_id, "a fetched asset needs a local_path on disk")
    declared_bytes(asset)  # a malformed size is named now
    return asset


def load_registry(path: Path) -> dict[str, Asset]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read the model registry: {str(exc).splitlines()[0]}") from None
    return {
        asset_id: _asset(path, section, asset_id, entry)
        for section in SECTIONS
        for asset_id, entry in (raw.get(section) or {}).items()
    }


def declared_bytes(asset: Asset) -> tuple[int | None, bool]:
    """(bytes, exact) of the registry's `size`: an int is exact, "≈ 4.8 GB" an estimate, absent unknown."""
    if asset.size is None:
        return None, False
    if isinstance(asset.size, int):
        return asset.size, True
    match = _SIZE.match(str(asset.size).strip())
    if match is None:
        raise BadInputError(f"{asset.id}: size {asset.size!r} is neither a byte count nor like '≈ 4.8 GB'")
    return round(float(match["number"]) * _UNITS[match["unit"].upper()]), False


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


def fetch_hint(asset: Asset) -> str:
    """How to get a missing asset: the fetch command, or the source to download by hand."""
    if asset.fetchable:
        return f"chexbench-bench assets fetch {asset.id}"
    return f"download it by hand: {asset.source}"


def check(assets: dict[str, Asset], asset_id: str, repo_root: Path, registry_path: Path) -> list[str]:
    """Verify presence and pinned hashes; raise one problem per missing or mismatching asset, return notes."""
    problems, notes = [], []
    for asset in closure(assets, asset_id):
        path = resolve_path(asset, repo_root)
        if path is None:
            problems.append(f"{asset.id}: has no local weights: {asset.source}")
            continue
        if not path.exists():
            problems.append(f"{asset.id}: expected at {path} ({asset.source}); {fetch_hint(asset)} ({registry_path})")
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


_FIELD = re.compile(r"^    (?P<key>[A-Za-z0-9_]+):(?P<value>[^#\n]*?)(?P<comment>\s+#.*)?\n?$")


def _scalar(value: str | int) -> str:
    """A YAML scalar that reads back as `value` (a string YAML would take for a number or null is quoted)."""
    if isinstance(value, int) or yaml.safe_load(value) == value:
        return str(value)
    return f"'{value}'"


def set_fields(registry_path: Path, asset_id: str, fields: dict[str, str | int]) -> None:
    """Write `key: value` lines into an asset's block, keeping the file's comments (a line's own trailing comment
    too) and layout; a key the block lacks is added at its end. The file is re-read here and replaced atomically."""
    fields = {key: _scalar(value) for key, value in fields.items()}
    lines = registry_path.read_text().splitlines(keepends=True)
    header = re.compile(rf"^  {re.escape(asset_id)}:\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        raise BadInputError(f"{registry_path}: no block for {asset_id!r}")
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    todo = dict(fields)
    for i in range(start + 1, end):
        match = _FIELD.match(lines[i])
        if match and match["key"] in todo:
            lines[i] = f"    {match['key']}: {todo.pop(match['key'])}{match['comment'] or ''}\n"
    lines[end:end] = [f"    {key}: {value}\n" for key, value in todo.items()]
    write_text_atomic(registry_path, "".join(lines))


def pin(registry_path: Path, asset: Asset, digest: str) -> None:
    """Write `sha256: <digest>` into the asset's block, keeping the file's comments and layout."""
    set_fields(registry_path, asset.id, {"sha256": digest})


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
