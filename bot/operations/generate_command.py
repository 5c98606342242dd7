"""``python -m bot generate``: render a prompt through the queue and a real engine process, without Discord.

The ``-o`` target is checked before anything is rendered; nothing the command queues outlives it (see
:func:`generate`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from bot.actors import Actor
from bot.errors import ImagineError
from bot.events import EventKind, JobEvent
from bot.jobs import Status
from bot.operations.db_check import database_problem
from bot.operations.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, UsageError
from bot.operations.interrupts import EXIT_INTERRUPTED, CommandInterruptedError, StopSignals, say_interrupted
from bot.requests.request_options import TaskOptions
from bot.scheduling.ledger import CONSOLE_ACTOR
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


INTERRUPTED_ENGINE_GRACE_S = 3.0
"""After Ctrl-C, how long the engine may take to exit (its job is cancelled at its next step) before it is killed."""


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
    from bot.application.service import ImagineService
    from bot.requests.preparation import check_shell_request
    from bot.requests.shell_files import check_shell_files

    try:  # every refusal before any database is opened or engine started
        check_shell_request(settings, prompt, options)
        checked = await asyncio.to_thread(check_shell_files, settings, options)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if stop.stopped:
        return say_interrupted()
    problem = database_problem(settings.database_file)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:  # not cut short by a signal: a half-open database would keep the process from exiting
        service = await ImagineService.open(settings, only_own_jobs=True)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (sqlite3.Error, OSError) as error:
        print(f"error: could not open the database {settings.database_file}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    stop.on_repeat = service.abort_rendering
    progress = ProgressLine()
    service.events.subscribe(progress.show)
    try:
        code, line = await _render_own_job(service, stop, prompt, options, checked, output)
    except CommandInterruptedError:
        code, line = EXIT_INTERRUPTED, "interrupted"
    except BaseException:
        await _end_own_jobs(service, grace_s=INTERRUPTED_ENGINE_GRACE_S)
        raise
    grace_s = INTERRUPTED_ENGINE_GRACE_S if stop.stopped else 10.0
    cancelled = await _end_own_jobs(service, grace_s=grace_s)
    if line is not None:
        if cancelled:
            line += f"; {_job_list(cancelled)} cancelled"
        progress.end()
        print(line, file=sys.stderr, flush=True)
    return code


async def _render_own_job(
    service: ImagineService,
    stop: StopSignals,
    prompt: str,
    options: TaskOptions,
    checked: Mapping[str, CheckedImage],
    output: OutputTarget | None,
) -> tuple[int, str | None]:
    """Queue the job, have it rendered, write the grid; the exit code and the line to end with (None: done).
    Raises CommandInterruptedError when a stop signal came before the job was done."""
    stop.check()
    try:  # one transaction: it is not cut short, a signal during it is seen right after
        submitted = await service.submit_shell_request(Actor.console(), prompt, options, checked)
    except ImagineError as error:
        return EXIT_CONFIG, f"error: {error}"
    try:
        await stop.interruptible(service.run_own_jobs())
    except ImagineError as error:
        return EXIT_FAILED, f"error: {error}"
    files = await service.member.job(Actor.console(), submitted.job.id)
    job, images = files.job, files.images
    if job.status is not Status.COMPLETED or job.grid_path is None:
        return EXIT_FAILED, f"error: job {job.id} {job.status.value}: {job.error}"
    grid = Path(job.grid_path)
    if output is not None:
        destination = output.for_job(job.id)
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            write_grid(grid, [Path(image.path) for image in images], destination)
        except OSError as error:
            return EXIT_FAILED, f"error: could not write {destination} ({error.strerror}); the grid is at {grid}"
        grid = destination
    print(f"grid: {grid}", file=sys.stderr)
    if job.safety.flagged:
        named = job.safety.images_named(len(images))
        print(f"flagged by the image safety check: {named} ({job.safety.reason})", file=sys.stderr)
    for image in images:
        print(image.path)
    return EXIT_OK, None


async def _end_own_jobs(service: ImagineService, *, grace_s: float) -> list[int]:
    """Cancel (and refund) the jobs this ``generate`` queued that did not end, then stop the engine and close the
    database. The ids cancelled."""
    cancelled: list[int] = []
    try:
        cancelled = [job.id for job in await service.cancel_unfinished_own_jobs(CONSOLE_ACTOR)]
    except (sqlite3.Error, ImagineError) as error:  # their lease runs out: the next start cancels them
        log.error("could not cancel job(s) %s: %s", sorted(service.own_jobs), error)
    finally:
        await service.close(engine_grace_s=grace_s)
    return cancelled


def _job_list(job_ids: Sequence[int]) -> str:
    """``job 12`` or ``jobs 12, 13``."""
    return f"job {job_ids[0]}" if len(job_ids) == 1 else f"jobs {', '.join(str(job_id) for job_id in job_ids)}"


class ProgressLine:
    """``generate``'s progress on standard error: ``rendering job N: step i/n``, rewritten in place on one line."""

    def __init__(self) -> None:
        self.open = False
        """A progress line is on the screen without its line end."""

    def show(self, event: JobEvent) -> None:
        if event.kind is EventKind.PROGRESS:
            print(f"\rrendering job {event.job.id}: step {event.step}/{event.total}", end="", file=sys.stderr)
            self.open = event.step != event.total
            if not self.open:
                print(file=sys.stderr)
        elif event.kind is EventKind.FAILED:
            self.end()
            print(f"job {event.job.id} failed: {event.message}", file=sys.stderr)

    def end(self) -> None:
        """Close an open progress line, so what follows starts a line of its own."""
        if self.open:
            print(file=sys.stderr)
