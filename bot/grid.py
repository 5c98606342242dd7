"""Compose the images of a job into one grid image (2×2 for four)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, PngImagePlugin

from engine.metadata import PARAMETERS_KEY


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


def write_grid(paths: Sequence[str | Path], destination: Path, parameters: str | None = None) -> Path:
    """Read the PNGs at ``paths``, write their grid to ``destination`` (atomically) and return it."""
    images = []
    for path in paths:
        with Image.open(path) as image:
            image.load()
            images.append(image.copy())
    grid = compose_grid(images)
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text(PARAMETERS_KEY, parameters)
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG", pnginfo=info)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.tmp")
    temporary.write_bytes(buffer.getvalue())
    temporary.replace(destination)
    return destination
