"""What a `make bench MODEL=…` run loads: every registry asset each stage needs, with its size, licence, gate and
local status, and the command that fetches what is missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from chexbench_common.errors import BadInputError
from chexbench_common.hashing import sha256_path

from .registry import Asset, closure, declared_bytes, fetch_hint, resolve_path

STAGES = ("generate", "embed", "fidelity", "align", "privacy", "classify", "llava-report")
PRESENT, UNPINNED, MISMATCH, MISSING, NO_WEIGHTS = "present", "unpinned", "hash mismatch", "missing", "no weights"
DEMO = "demo"


@dataclass(frozen=True)
class Row:
    asset: Asset
    stages: tuple[str, ...]
    status: str
    path: Path | None
    local_bytes: int | None

    @property
    def size(self) -> tuple[int | None, bool]:
        """(bytes, exact): on disk when present, else as the registry declares it."""
        if self.local_bytes is not None and self.status != MISMATCH:
            return self.local_bytes, True
        return declared_bytes(self.asset)

    @property
    def needs_fetch(self) -> bool:
        return self.status == MISSING and self.asset.fetchable

    def as_dict(self) -> dict:
        asset = self.asset
        size, exact = self.size
        return {
            "id": asset.id,
            "stages": list(self.stages),
            "optional": asset.optional,
            "status": self.status,
            "local_path": None if self.path is None else str(self.path),
            "size_bytes": size,
            "size_exact": exact,
            "licence": asset.licence,
            "gated": asset.gated,
            "source": asset.source,
            "kind": asset.kind,
            "repo": asset.repo,
            "revision": asset.revision,
            "files": list(asset.files) or ([asset.file] if asset.file else []),
            "url": asset.url,
            "sha256": asset.sha256,
            "unverified": asset.unverified,
            "note": asset.note,
            "fetch": fetch_hint(asset) if self.status == MISSING else None,
        }


def _bytes_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _row(asset: Asset, stages: tuple[str, ...], repo_root: Path) -> Row:
    path = resolve_path(asset, repo_root)
    if path is None:
        return Row(asset, stages, NO_WEIGHTS, None, None)
    if not path.exists():
        return Row(asset, stages, MISSING, path, None)
    status = UNPINNED if asset.sha256 is None else PRESENT if sha256_path(path) == asset.sha256 else MISMATCH
    return Row(asset, stages, status, path, _bytes_on_disk(path))


def build_plan(assets: dict[str, Asset], model: str, repo_root: Path) -> list[Row]:
    """The generator's closure (for generate), then every asset a stage of the run declares, each once."""
    if model == DEMO:
        raise BadInputError(
            "demo is the embedded default: it downloads nothing; name a registry model, e.g. MODEL=sana"
        )
    if model not in assets or assets[model].section != "generators":
        known = sorted(a.id for a in assets.values() if a.section == "generators")
        raise BadInputError(f"{model!r} is not a generator of the registry; known: {', '.join(known)}")
    needs: dict[str, list[str]] = {a.id: ["generate"] for a in closure(assets, model)}
    for asset in assets.values():
        if asset.section != "generators":
            needs.setdefault(asset.id, []).extend(s for s in asset.stages if s not in needs.get(asset.id, []))
    ordered = [i for i in needs if needs[i]]
    ordered.sort(key=lambda i: min(STAGES.index(s) if s in STAGES else len(STAGES) for s in needs[i]))
    return [_row(assets[i], tuple(needs[i]), repo_root) for i in ordered]


def human(size: int | None, exact: bool = True) -> str:
    """1234567 -> '1.23 MB' (decimal units, three significant digits); an estimate gets '≈'."""
    if size is None:
        return "unknown"
    value, unit = float(size), "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 999.5 or unit == "TB":
            break
        value /= 1000
    text = f"{value:.0f} B" if unit == "B" else f"{value:.3g} {unit}"
    return text if exact else f"≈ {text}"


def _total(rows: list[Row]) -> tuple[int, bool, int]:
    """(bytes, all exact, number of unknown sizes)."""
    sizes = [r.size for r in rows]
    return sum(s or 0 for s, _ in sizes), all(e for _, e in sizes), sum(s is None for s, _ in sizes)


def _sum_text(rows: list[Row]) -> str:
    total, exact, unknown = _total(rows)
    if unknown == len(rows) and rows:
        return "an unknown size"
    return human(total, exact and not unknown) + (f" + {unknown} of unknown size" if unknown else "")


def fetch_command(model: str, rows: list[Row]) -> str | None:
    ids = [r.asset.id for r in rows if r.needs_fetch]
    return f"make weights MODEL={model}  (= chexbench-bench assets fetch {' '.join(ids)})" if ids else None


def as_dict(model: str, registry: Path, rows: list[Row]) -> dict:
    total, exact, unknown = _total(rows)
    missing, missing_exact, missing_unknown = _total([r for r in rows if r.needs_fetch])
    return {
        "model": model,
        "registry": str(registry),
        "assets": [r.as_dict() for r in rows],
        "total_bytes": total,
        "total_exact": exact,
        "unknown_sizes": unknown,
        "to_fetch_bytes": missing,
        "to_fetch_exact": missing_exact,
        "to_fetch_unknown_sizes": missing_unknown,
        "fetch_command": fetch_command(model, rows),
    }


def render(model: str, registry: Path, rows: list[Row]) -> str:
    """The plan as a table for a terminal, then totals, optional assets, licences, gates and what to run."""
    header = ("asset", "needed by", "size", "gate", "status")
    cells = [
        (
            r.asset.id,
            ", ".join(r.stages) + (" (optional)" if r.asset.optional else ""),
            human(*r.size),
            "gated" if r.asset.gated else "-",
            r.status,
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    lines = [f"make bench MODEL={model} loads ({registry}):"]
    for line in [header, *cells]:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    fetch_rows = [r for r in rows if r.needs_fetch]
    lines.append(
        f"total {_sum_text(rows)} in {len(rows)} assets; to fetch {_sum_text(fetch_rows)} in {len(fetch_rows)}"
    )
    for r in rows:
        if r.asset.optional:
            lines.append(f"optional: {r.asset.id}: {r.asset.optional}")
    lines.append("licences:")
    by_licence: dict[str, list[str]] = {}
    for r in rows:
        by_licence.setdefault(r.asset.licence or "not stated", []).append(r.asset.id)
    lines += [f"  {', '.join(ids)}: {licence}" for licence, ids in by_licence.items()]
    gated = [r.asset for r in rows if r.asset.gated]
    if gated:
        lines.append("gated (accept the terms on the model page while logged in, then set HF_TOKEN):")
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        lines += [f"  {a.id}: {endpoint}/{a.repo}" if a.repo else f"  {a.id}: {a.source}" for a in gated]
    else:
        lines.append("gated: none")
    for r in rows:
        if r.asset.note:
            lines.append(f"note: {r.asset.id}: {r.asset.note}")
    for r in rows:
        if r.asset.unverified:
            lines.append(f"unverified: {r.asset.id}: {r.asset.unverified}")
    for r in rows:
        if r.status == MISMATCH:
            lines.append(f"hash mismatch: {r.asset.id}: {r.path} differs from its pin; move it away, then fetch it")
        elif r.status == UNPINNED:
            lines.append(f"unpinned: {r.asset.id}: chexbench-bench assets pin {r.asset.id} records its sha256")
        elif r.status in (MISSING, NO_WEIGHTS) and not r.asset.fetchable:
            lines.append(f"by hand: {r.asset.id}: {r.asset.source}")
    command = fetch_command(model, rows)
    lines.append(f"fetch what is missing: {command}" if command else "nothing to fetch")
    return "\n".join(lines)
