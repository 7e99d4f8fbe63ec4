"""Input sets: synthetic images from an `images` table, real images from a `prompts` table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chexbench_common.errors import SchemaError
from chexbench_common.paths import resolve_under
from chexbench_schema import read_table


@dataclass
class Source:
    """One image set in table order; `where` names each row for messages (table file, 1-based row, id)."""

    kind: str
    table: Path
    image_ids: list[str]
    prompt_ids: list[str]
    paths: list[Path]
    where: list[str]
    expected_sha256: list[str | None] | None = None  # the images table's sha256 column (synthetic sets)

    def __len__(self) -> int:
        return len(self.image_ids)

    def select(self, part: slice) -> Source:
        expected = self.expected_sha256[part] if self.expected_sha256 is not None else None
        return Source(
            self.kind,
            self.table,
            self.image_ids[part],
            self.prompt_ids[part],
            self.paths[part],
            self.where[part],
            expected,
        )


def _where(table: Path, row: int, key: str, value: str) -> str:
    return f"{table.name} row {row + 1} ({key} {value})"


def read_synthetic(table: Path, images_root: Path) -> Source:
    """Rows of an images table; `path` is resolved under `images_root` (escapes are refused)."""
    frame = read_table(table, "images")
    where = [_where(table, i, "image_id", v) for i, v in enumerate(frame["image_id"])]
    paths = [resolve_under(images_root, p, where=w) for p, w in zip(frame["path"], where, strict=True)]
    return Source(
        "synthetic", table, list(frame["image_id"]), list(frame["prompt_id"]), paths, where, list(frame["sha256"])
    )


def read_real(table: Path, real_root: Path) -> Source:
    """Rows of a prompts table; image_id = prompt_id, `image_path` resolved under `real_root`.

    Every row needs an image_path: rows without one are all reported together.
    """
    frame = read_table(table, "prompts")
    missing = [
        f"row {i + 1} (prompt_id {pid}): no image_path; every prompt needs its real image to be embedded"
        for i, (pid, p) in enumerate(zip(frame["prompt_id"], frame["image_path"], strict=True))
        if p is None
    ]
    if missing:
        raise SchemaError(str(table), missing)
    where = [_where(table, i, "prompt_id", v) for i, v in enumerate(frame["prompt_id"])]
    paths = [resolve_under(real_root, p, where=w) for p, w in zip(frame["image_path"], where, strict=True)]
    ids = list(frame["prompt_id"])
    return Source("real", table, ids, ids, paths, where)
