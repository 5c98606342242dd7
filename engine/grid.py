"""The grid of a job's images: one picture, 2×2 for four images, 2×1 for two, 1×1 for one."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image


def grid_shape(count: int) -> tuple[int, int]:
    """Columns and rows for ``count`` images: 1 -> 1×1, 2 -> 2×1, 3 or 4 -> 2×2."""
    if count < 1:
        raise ValueError(f"a grid needs at least one image, got {count}")
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    return columns, rows


def compose_grid(images: Sequence[Image.Image]) -> Image.Image:
    """Paste ``images`` (all of one size) left to right, top to bottom."""
    columns, rows = grid_shape(len(images))
    width, height = images[0].size
    if any(image.size != (width, height) for image in images):
        raise ValueError("all images of a grid must have the same size")
    grid = Image.new("RGB", (columns * width, rows * height))
    for index, image in enumerate(images):
        grid.paste(image.convert("RGB"), ((index % columns) * width, (index // columns) * height))
    return grid
