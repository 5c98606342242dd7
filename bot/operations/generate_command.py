"""``python -m bot generate``: render a prompt through the queue and a real engine process, without Discord.

The ``-o`` target is checked before anything is rendered; nothing the command queues outlives it (see
:func:`generate`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from bot.actors import Actor
from bot.errors import ImagineError
from bot.operations.exit_codes import EXIT_CONFIG, UsageError
from bot.operations.interrupts import StopSignals
from bot.operations.shell_job import Outcome, deliver_grid, run_own_job, run_submitted
from bot.requests.request_options import TaskOptions
from config.settings import Settings
from engine.grid import compose_grid
from engine.metadata import PARAMETERS_KEY, read_parameters
from engine.png_encoding import encode_png

if TYPE_CHECKING:
    from bot.application.service import ImagineService
    from bot.requests.uploads import CheckedImage

log = logging.getLogger(__name__)


def write_grid(grid: Path, singles: Sequence[Path], destination: Path) -> None:
    """Write the job's grid to ``destination``: a lossless PNG made from the single PNGs, with the grid's
    parameters (the engine's grid is a JPEG, made to be posted); a sweep's sheet, already a PNG, as it is."""
    if grid.suffix.lower() == destination.suffix.lower():
        shutil.copyfile(grid, destination)
        return
    pictures = []
    for path in singles:
        with Image.open(path) as single:
            pictures.append(single.convert("RGB"))
    data = encode_png(compose_grid(pictures), {PARAMETERS_KEY: read_parameters(grid.read_bytes()) or ""})
    destination.write_bytes(data)


@dataclass(frozen=True)
class OutputTarget:
    """Where ``generate -o`` writes the grid: a file, or a folder that gets ``imagine_<job>.png``."""

    path: Path
    folder: bool

    def for_job(self, job_id: int) -> Path:
        return self.path / f"imagine_{job_id}.png" if self.folder else self.path


def output_target(output: str | None) -> OutputTarget | None:
    """Check ``-o`` before anything is rendered. A folder (existing, or written with a trailing slash) gets
    ``imagine_<job>.png`` inside; otherwise the grid is written to the file (a ``.png``). Raises UsageError."""
    if output is None:
        return None
    if not output.strip():
        raise UsageError("-o needs a file name (*.png) or a folder")
    path = Path(output).expanduser()
    if path.is_dir() or output.endswith(("/", os.sep)):
        _check_writable_folder(path)
        return OutputTarget(path, folder=True)
    if path.suffix.lower() != ".png":
        raise UsageError(f"-o {output}: the grid is a PNG; name the file *.png (or give a folder)")
    if path.exists() and not path.is_file():
        raise UsageError(f"-o {output}: it exists and is not a regular file; choose another path")
    if path.exists():
        try:
            with path.open("ab"):  # opened for writing, nothing written
                pass
        except OSError as error:
            raise UsageError(
                f"-o {output}: the file cannot be written ({error.strerror}); choose another path"
            ) from None
    _check_writable_folder(path.parent)
    return OutputTarget(path, folder=False)


def _check_writable_folder(folder: Path) -> None:
    """The folder (or, when it does not exist yet, the closest existing folder above it) must take a new file:
    tried for real with a nameless temporary file, since permission bits say nothing to root or on /proc."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"-o: {existing} is not a folder, so nothing can be written under it")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UsageError(f"-o: nothing can be written in {existing} ({error.strerror}); choose another place") from None


async def generate(
    settings: Settings, prompt: str, output: OutputTarget | None, options: TaskOptions | None = None
) -> int:
    """Render one /imagine through the queue and a real engine process; print the image paths.

    Nothing it queues outlives it: ending any other way than with its job done (an error, an engine that cannot
    start, Ctrl-C or SIGTERM) cancels the job, refunded as any cancel. Ctrl-C or SIGTERM also stops the engine
    and ends with one line, ``interrupted; job N cancelled``, and exit 130; a second one kills the engine at once.
    """
    with StopSignals(asyncio.get_running_loop()) as stop:
        return await _generate(settings, prompt, output, options or TaskOptions(), stop)


async def _generate(
    settings: Settings, prompt: str, output: OutputTarget | None, options: TaskOptions, stop: StopSignals
) -> int:
    from bot.requests.preparation import check_shell_request
    from bot.requests.shell_files import check_shell_files

    try:  # every refusal before any database is opened or engine started
        check_shell_request(settings, prompt, options)
        checked = await asyncio.to_thread(check_shell_files, settings, options)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG

    async def step(service: ImagineService) -> Outcome:
        return await _render_own_job(service, stop, prompt, options, checked, output)

    return await run_own_job(settings, stop, step, progress=True)


async def _render_own_job(
    service: ImagineService,
    stop: StopSignals,
    prompt: str,
    options: TaskOptions,
    checked: Mapping[str, CheckedImage],
    output: OutputTarget | None,
) -> Outcome:
    """Queue the job, have it rendered, write the grid; the exit code and the line to end with (None: done).
    Raises CommandInterruptedError when a stop signal came before the job was done."""
    try:  # one transaction: it is not cut short, a signal during it is seen right after
        submitted = await service.submit_shell_request(Actor.console(), prompt, options, checked)
    except ImagineError as error:
        return EXIT_CONFIG, f"error: {error}"
    failed = await run_submitted(service, stop)
    if failed is not None:
        return failed
    return await deliver_grid(service, submitted.job.id, output, report_safety=True)
