"""Sweeps: the cells of up to three axes, each a variant of one task, and the labelled grid that shows them."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from engine.protocol import RenderTask
from engine.samplers import SAMPLERS

LABEL_HEIGHT = 14


@dataclass(frozen=True)
class SweepCell:
    """One combination: the task to render (one seed) and its label, e.g. ``cfg=5, steps=20``."""

    task: RenderTask
    label: str


def expand_sweep(task: RenderTask, base_kind: str) -> list[SweepCell]:
    """Every combination of ``task.sweep`` as a single-image task of ``base_kind``. Raises ValueError."""
    if not task.sweep:
        raise ValueError("sweep is empty; give at least one axis such as cfg=3,5,7")
    if len(task.sweep) > 3:
        raise ValueError(f"sweep has {len(task.sweep)} axes; at most 3")
    cells: list[SweepCell] = []
    axes = [(name, values) for name, values in task.sweep]
    for combination in itertools.product(*(values for _name, values in axes)):
        changes: dict[str, object] = {"kind": base_kind, "sweep": (), "seeds": task.seeds[:1]}
        labels: list[str] = []
        prompt = task.prompt
        for (name, _values), value in zip(axes, combination, strict=True):
            labels.append(f"{name}={value}")
            if name == "seed":
                changes["seeds"] = (int(value),)
            elif name == "cfg":
                changes["cfg"] = float(value)
            elif name == "steps":
                changes["steps"] = int(value)
            elif name == "strength":
                changes["strength"] = float(value)
            elif name == "sampler":
                if value not in SAMPLERS:
                    raise ValueError(f"sweep sampler {value!r} is not one of: {', '.join(SAMPLERS)}")
                changes["sampler"] = value
            elif name == "prompt":
                search = _values[0]
                if search not in task.prompt:
                    raise ValueError(f"sweep prompt: {search!r} (the first value) does not occur in the prompt")
                prompt = prompt.replace(search, value)
            else:
                raise ValueError(f"sweep axis {name!r} is not one of seed, cfg, steps, sampler, prompt, strength")
        changes["prompt"] = prompt
        cells.append(SweepCell(dataclasses.replace(task, **changes), ", ".join(labels)))  # type: ignore[arg-type]
    return cells


def labelled_grid(images: Sequence[Image.Image], labels: Sequence[str], columns: int) -> Image.Image:
    """Cells left to right, top to bottom (``columns`` = values of the first axis), each under its label."""
    width = max(image.width for image in images)
    height = max(image.height for image in images)
    rows = -(-len(images) // columns)
    grid = Image.new("RGB", (columns * width, rows * (height + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        x, y = (index % columns) * width, (index // columns) * (height + LABEL_HEIGHT)
        draw.text((x + 2, y + 1), label, fill="black", font=font)
        grid.paste(image.convert("RGB"), (x, y + LABEL_HEIGHT))
    return grid
