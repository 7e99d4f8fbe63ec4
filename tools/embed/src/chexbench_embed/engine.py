"""One decoding pass per image set feeding every extractor that still needs the image.

Decoding and resizing run in DataLoader workers; each image is decoded once however many extractors need it.
A file that does not decode stops the encoding; the pass goes on decoding only, so the run ends with one line per
undecodable file (table row and file; up to the reporting limit, then a count), not just the first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from chexbench_common.errors import ChexbenchError, ImageDecodeErrors, OutOfMemoryError
from chexbench_common.imageio import BitDepthAudit, DepthInfo, load_grey_with_depth
from chexbench_common.progress import Progress

from .inputs import Source
from .preprocess import GreyTransform

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class ImageDataset(torch.utils.data.Dataset):
    """Item: (row, {extractor: (1, H, W) tensor}, depth info, error message or None) for the rows some extractor
    needs. The depth info travels back to the parent, which warns once per table (BitDepthAudit)."""

    def __init__(
        self,
        source: Source,
        transforms: dict[str, GreyTransform],
        needs: dict[str, np.ndarray],
        bit_depth: str = "auto",
    ):
        self.source, self.transforms, self.needs, self.bit_depth = source, transforms, needs, bit_depth
        self.rows = np.flatnonzero(np.logical_or.reduce(list(needs.values())))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int):
        row = int(self.rows[j])
        try:
            grey, depth = load_grey_with_depth(self.source.paths[row], self.bit_depth)
            out = {n: torch.from_numpy(t.apply(grey))[None] for n, t in self.transforms.items() if self.needs[n][row]}
        except ChexbenchError as exc:
            return row, {}, None, str(exc)
        return row, out, depth, None


def collate(batch):
    """({extractor: (rows, stacked images)}, [(row, error)], [(row, depth info)], batch length), built in the
    worker."""
    groups: dict[str, tuple[list[int], list]] = {}
    for row, images, _, _ in batch:
        for name, image in images.items():
            groups.setdefault(name, ([], []))
            groups[name][0].append(row)
            groups[name][1].append(image)
    errors = [(row, err) for row, _, _, err in batch if err is not None]
    depths = [(row, depth) for row, _, depth, _ in batch if depth is not None]
    return {n: (rows, torch.stack(images)) for n, (rows, images) in groups.items()}, errors, depths, len(batch)


@dataclass
class Options:
    batch_size: int = 32
    num_workers: int = 0
    precision: str = "fp32"
    bit_depth: dict[str, str] = field(default_factory=lambda: {"real": "auto", "synthetic": "auto"})


def extract(
    source: Source,
    encoders: dict[str, tuple[GreyTransform, Callable]],
    needs: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    device,
    options: Options,
    on_batch: Callable[[str, list[int]], None] | None = None,
    depths: dict[int, DepthInfo] | None = None,
) -> None:
    """Fill outputs[table][row] wherever needs[name][row]; `encoders` maps a name to (transform, loaded encoder).

    An encoder returns (N, dim) vectors for the table of its own name, or {table: vectors} for several tables.
    `depths` holds the depth info of rows not decoded here (the cache's) and gets every decoded row's; the table's
    bit-depth warning is given from all of them, so it is the same whether the cache answered or not."""
    bit_depth = options.bit_depth[source.kind]
    depths = {} if depths is None else depths
    dataset = ImageDataset(source, {n: t for n, (t, _) in encoders.items()}, needs, bit_depth)
    if len(dataset):
        _encode(dataset, encoders, outputs, device, options, on_batch, depths)
    audit = BitDepthAudit(str(source.table), bit_depth)
    for info in depths.values():
        audit.observe(info)
    audit.warn()


def _encode(dataset: ImageDataset, encoders, outputs, device, options: Options, on_batch, depths) -> None:
    source = dataset.source
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=options.batch_size,
        num_workers=options.num_workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
    )
    if device.type == "cuda":  # fp32 means IEEE fp32 (no TF32), so GPU vectors match CPU ones and share the cache
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    dtype = PRECISIONS[options.precision]
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    failed: list[tuple[int, str]] = []
    with Progress(len(dataset), f"embed {source.kind}", "img") as progress, torch.inference_mode():
        for groups, errors, decoded, count in loader:
            depths.update(decoded)
            failed += errors
            if failed:  # the rest is only decoded, to name every bad file at once
                groups = {}
            for name, (rows, images) in groups.items():
                try:
                    with autocast:
                        produced = encoders[name][1](images.to(device, non_blocking=True))
                except torch.OutOfMemoryError:
                    raise OutOfMemoryError(
                        f"extractor {name}: out of memory at batch size {options.batch_size}; "
                        "use a smaller --batch-size"
                    ) from None
                for table, vectors in (produced if isinstance(produced, dict) else {name: produced}).items():
                    outputs[table][rows] = vectors.float().cpu().numpy()
                    if on_batch is not None:
                        on_batch(table, rows)
            progress.update(count)
    if failed:
        raise ImageDecodeErrors([f"{source.where[row]}: {message}" for row, message in sorted(failed)])
