"""A task's finished files: each image, and the grid that shows them (a sweep's labelled sheet), as PNGs.

The engine writes every file a job ends with, each with the A1111 ``parameters`` text chunk, and lists them in
its :class:`~engine.protocol.TaskDone` (with their bytes when the task asks for them, for a bot on another host).
Every file is written to a temporary name and renamed, so a reader never sees half a file. Engine process only.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image

from engine.grid import compose_grid
from engine.metadata import parameters_for, png_bytes
from engine.protocol import COMPACT_ABOVE_BYTES, RenderTask, TaskDone
from engine.render import Rendered

GRID_NAME = "grid.png"
"""The grid of a job's images, beside them in its output folder."""
SWEEP_NAME = "sweep.png"
"""A sweep's labelled sheet, in place of the grid."""
JPEG_QUALITIES = (92, 85, 75, 60)


def write_results(
    model_name: str, task: RenderTask, rendered: Rendered, seconds: float, *, compact_above: int = COMPACT_ABOVE_BYTES
) -> TaskDone:
    """Write a task's PNGs and its grid (a sweep: its labelled sheet) with their metadata, and a compact JPEG copy
    of a grid larger than ``compact_above`` bytes; the reply listing them."""
    output_dir = Path(task.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    width, height = rendered.images[0].width, rendered.images[0].height
    paths: list[str] = []
    encoded: list[bytes] = []
    for index, (image, info) in enumerate(zip(rendered.images, rendered.infos, strict=True)):
        parameters = parameters_for(task, model_name, image.width, image.height, image=info, loras=rendered.loras)
        data = png_bytes(image, parameters)
        path = output_dir / f"{index}.png"
        write_atomically(path, data)
        paths.append(str(path))
        encoded.append(data)
    if rendered.grid is not None:
        sweep = rendered.grid
        axes = tuple((name, ",".join(values)) for name, values in task.sweep)
        grid_file = output_dir / SWEEP_NAME
        grid_data = png_bytes(sweep, parameters_for(task, model_name, sweep.width, sweep.height, extra=axes))
        grid_image = sweep
    else:
        grid_file = output_dir / GRID_NAME
        grid_image = compose_grid(rendered.images)
        grid_data = png_bytes(grid_image, parameters_for(task, model_name, width, height))
    write_atomically(grid_file, grid_data)
    if len(grid_data) > compact_above:
        write_atomically(grid_file.with_suffix(".jpg"), compact_jpeg(grid_image, compact_above))
    return TaskDone(
        job_id=task.job_id,
        paths=tuple(paths),
        seeds=tuple(info.seed for info in rendered.infos),
        width=width,
        height=height,
        seconds=seconds,
        png_bytes=tuple(encoded) if task.return_bytes else None,
        grid_path=str(grid_file),
        grid_png=grid_data if task.return_bytes else None,
        labels=tuple(info.label for info in rendered.infos) if rendered.grid is not None else (),
    )


def compact_jpeg(image: Image.Image, limit: int) -> bytes:
    """The image as a JPEG of at most ``limit`` bytes: lower quality first, then three quarters of the size."""
    rgb = image.convert("RGB")
    while True:
        for quality in JPEG_QUALITIES:
            buffer = io.BytesIO()
            rgb.save(buffer, format="JPEG", quality=quality, optimize=True)
            if buffer.tell() <= limit:
                return buffer.getvalue()
        rgb = rgb.resize((max(1, rgb.width * 3 // 4), max(1, rgb.height * 3 // 4)))


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder: all of it appears, or nothing."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
