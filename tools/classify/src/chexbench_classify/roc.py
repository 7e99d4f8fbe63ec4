"""ROC curves as one PNG: a panel per setting (its first seed), a curve per class that has both labels in the test
set. Drawn with Pillow (already a dependency) rather than matplotlib, which no other part of the stage needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from chexbench_common.atomic import atomic_path
from PIL import Image, ImageDraw
from sklearn.metrics import roc_curve

PANEL, MARGIN = 320, 28
COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 128),
    (128, 0, 0),
    (0, 128, 0),
    (90, 90, 0),
]


def roc_png(panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], classes: tuple[str, ...], path: Path) -> Path:
    """panels: (title, y (n, C), probs (n, C), mask (n, C)) each; writes path atomically."""
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    image = Image.new("RGB", (columns * PANEL, rows * PANEL + 16 * len(classes) // 2 + 8), "white")
    draw = ImageDraw.Draw(image)
    side = PANEL - 2 * MARGIN
    for k, (title, y, probs, mask) in enumerate(panels):
        x0, y0 = (k % columns) * PANEL + MARGIN, (k // columns) * PANEL + MARGIN
        draw.rectangle([x0, y0, x0 + side, y0 + side], outline="black")
        draw.line([x0, y0 + side, x0 + side, y0], fill=(200, 200, 200))
        draw.text((x0, y0 - 16), title, fill="black")
        for c in range(len(classes)):
            yc, pc = y[mask[:, c], c], probs[mask[:, c], c]
            if not 0 < yc.sum() < len(yc):
                continue
            fpr, tpr, _ = roc_curve(yc, pc)
            points = [(x0 + f * side, y0 + (1 - t) * side) for f, t in zip(fpr, tpr, strict=True)]
            draw.line(points, fill=COLOURS[c % len(COLOURS)], width=2)
    legend_y = rows * PANEL
    for c, name in enumerate(classes):
        x, yy = 8 + (c % 2) * 260, legend_y + 4 + (c // 2) * 16
        draw.rectangle([x, yy + 4, x + 10, yy + 12], fill=COLOURS[c % len(COLOURS)])
        draw.text((x + 16, yy), name, fill="black")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
