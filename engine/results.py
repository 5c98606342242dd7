"""A task's finished files: each image as a PNG, and the grid that shows them as a JPEG (a sweep's labelled sheet
as a PNG), all with their A1111 parameters.

The engine writes every file a job ends with and lists them in its :class:`~engine.protocol.TaskDone` (with their
bytes when the task asks for them, for a bot on another host). The files of a task are encoded in parallel on an
encoder pool (Pillow releases the GIL while it compresses) and each is written to a temporary name and renamed, so
a reader never sees half a file. Engine process only.

Why the grid is a JPEG: it is what the chat shows (a preview either way), its parameters travel in the post and in
the singles, and the singles keep every pixel. ``python -m bench.result_encoding`` measures the choice: a 1024²
grid takes about 3 ms and 270 KiB as a JPEG of quality 90 against 116 ms and 2.1 MiB as a PNG at level 1, 30–50 ms
as a lossless WebP and 35 ms as a lossy WebP of the same size, on one core of a 2-core CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TypeVar

from PIL import Image

from engine.atomic_files import write_atomically
from engine.grid import compose_grid
from engine.metadata import ImageParameters, jpeg_bytes, parameters_for, png_bytes
from engine.protocol import COMPACT_ABOVE_BYTES, RenderTask, TaskDone
from engine.render import Rendered

GRID_NAME = "grid.jpg"
"""The grid of a job's images, beside them in its output folder."""
SWEEP_NAME = "sweep.png"
"""A sweep's labelled sheet, in place of the grid: lossless, since it exists to compare details."""
GRID_QUALITY = 90
"""JPEG quality of a grid; lower only when the grid would exceed the upload limit."""
JPEG_QUALITIES = (GRID_QUALITY, 85, 75, 60)

T = TypeVar("T")


def write_results(
    model_name: str,
    task: RenderTask,
    rendered: Rendered,
    seconds: float,
    *,
    encoders: Executor | None = None,
    compact_above: int = COMPACT_ABOVE_BYTES,
    distilled: bool = False,
) -> TaskDone:
    """Write a task's PNGs and its grid (a sweep: its labelled sheet, plus a compact JPEG copy of one larger than
    ``compact_above`` bytes) with their metadata, encoding them in parallel on ``encoders`` (here when None); the
    reply listing them. ``distilled``: the model's guidance is distilled (FLUX.1; see
    :attr:`~engine.metadata.ImageParameters.distilled`). Raises OSError when a file cannot be written (none of it is
    left half-written)."""
    output_dir = Path(task.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    width, height = rendered.images[0].width, rendered.images[0].height
    singles: list[Future[bytes]] = []
    for index, (image, info) in enumerate(zip(rendered.images, rendered.infos, strict=True)):
        parameters = parameters_for(
            task, model_name, image.width, image.height, image=info, loras=rendered.loras, distilled=distilled
        )
        singles.append(_submit(encoders, _write_png, output_dir / f"{index}.png", image, parameters))
    if rendered.grid is not None:
        sweep = rendered.grid
        axes = tuple((name, ",".join(values)) for name, values in task.sweep)
        parameters = parameters_for(task, model_name, sweep.width, sweep.height, extra=axes, distilled=distilled)
        grid_file = output_dir / SWEEP_NAME
        grid = _submit(encoders, _write_sheet, grid_file, sweep, parameters, compact_above)
    else:
        grid_file = output_dir / GRID_NAME
        parameters = parameters_for(task, model_name, width, height, distilled=distilled)
        grid = _submit(encoders, _write_grid, grid_file, rendered.images, parameters, compact_above)
    encoded = [future.result() for future in singles]
    grid_data = grid.result()
    return TaskDone(
        job_id=task.job_id,
        paths=tuple(str(output_dir / f"{index}.png") for index in range(len(encoded))),
        seeds=tuple(info.seed for info in rendered.infos),
        width=width,
        height=height,
        seconds=seconds,
        png_bytes=tuple(encoded) if task.return_bytes else None,
        grid_path=str(grid_file),
        grid_bytes=grid_data if task.return_bytes else None,
        labels=tuple(info.label for info in rendered.infos) if rendered.grid is not None else (),
        suggestions=rendered.suggestions,
    )


def _submit(encoders: Executor | None, work: Callable[..., T], *args: object) -> Future[T]:
    """``work(*args)`` on ``encoders``, or here and now when there is no pool."""
    if encoders is not None:
        return encoders.submit(work, *args)
    future: Future[T] = Future()
    try:
        future.set_result(work(*args))
    except BaseException as error:
        future.set_exception(error)
    return future


def _write_png(path: Path, image: Image.Image, parameters: ImageParameters) -> bytes:
    data = png_bytes(image, parameters)
    write_atomically(path, data)
    return data


def _write_grid(path: Path, images: list[Image.Image], parameters: ImageParameters, limit: int) -> bytes:
    """The grid of ``images`` as a JPEG of at most ``limit`` bytes (lower quality, then smaller, only when needed)."""
    data = compact_jpeg(compose_grid(images), limit, parameters)
    write_atomically(path, data)
    return data


def _write_sheet(path: Path, sheet: Image.Image, parameters: ImageParameters, limit: int) -> bytes:
    """A sweep's sheet as a PNG, and a compact JPEG copy beside it (``.jpg``) when the PNG exceeds ``limit``."""
    data = _write_png(path, sheet, parameters)
    if len(data) > limit:
        write_atomically(path.with_suffix(".jpg"), compact_jpeg(sheet, limit, parameters))
    return data


def compact_jpeg(image: Image.Image, limit: int, parameters: ImageParameters) -> bytes:
    """The image as a JPEG of at most ``limit`` bytes with its parameters: lower quality first, then three quarters
    of the size."""
    rgb = image.convert("RGB")
    while True:
        for quality in JPEG_QUALITIES:
            data = jpeg_bytes(rgb, parameters, quality=quality)
            if len(data) <= limit:
                return data
        rgb = rgb.resize((max(1, rgb.width * 3 // 4), max(1, rgb.height * 3 // 4)))
