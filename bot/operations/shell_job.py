"""The steps every job command of the owner's shell (``generate``, ``blend``, ``describe``) shares.

After a command has refused what it can before anything is opened, :func:`run_own_job` opens the service for its
own jobs only, runs the command's step (queue, render, print) and ends with nothing it queued outliving it: the
jobs that did not end are cancelled (and refunded), the engine stopped and the database closed. Ctrl-C or SIGTERM
ends with one line, ``interrupted; job N cancelled``, and exit 130; a second one kills the engine at once.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.actors import Actor
from bot.errors import ImagineError
from bot.events import EventKind, JobEvent
from bot.jobs import Status
from bot.operations.db_check import database_problem
from bot.operations.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from bot.operations.interrupts import EXIT_INTERRUPTED, CommandInterruptedError, StopSignals, say_interrupted
from bot.scheduling.ledger import CONSOLE_ACTOR
from config.settings import Settings

if TYPE_CHECKING:
    from bot.application.service import ImagineService
    from bot.operations.generate_command import OutputTarget

log = logging.getLogger(__name__)

INTERRUPTED_ENGINE_GRACE_S = 3.0
"""After Ctrl-C, how long the engine may take to exit (its job is cancelled at its next step) before it is killed."""

DONE_ENGINE_GRACE_S = 10.0
"""After the command's step ended on its own, how long the engine may take to exit before it is killed."""

Outcome = tuple[int, str | None]
"""A command step's exit code and the line to end with on standard error (None: nothing more to say)."""

JobStep = Callable[["ImagineService"], Awaitable[Outcome]]
"""A command's own step with the opened service: queue its job, have it run, print what it made."""


async def run_own_job(settings: Settings, stop: StopSignals, step: JobStep, *, progress: bool) -> int:
    """Open the service for the command's own jobs, run ``step``, end every job it left unfinished, and print the
    step's last line (with the jobs cancelled); the exit code. ``progress`` shows ``rendering job N: step i/n``."""
    from bot.application.service import ImagineService

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
    progress_line = ProgressLine()
    if progress:
        service.events.subscribe(progress_line.show)
    try:
        stop.check()
        code, line = await step(service)
    except CommandInterruptedError:
        code, line = EXIT_INTERRUPTED, "interrupted"
    except BaseException:
        await end_own_jobs(service, grace_s=INTERRUPTED_ENGINE_GRACE_S)
        raise
    cancelled = await end_own_jobs(service, grace_s=INTERRUPTED_ENGINE_GRACE_S if stop.stopped else DONE_ENGINE_GRACE_S)
    if line is not None:
        if cancelled:
            line += f"; {job_list(cancelled)} cancelled"
        progress_line.end()
        print(line, file=sys.stderr, flush=True)
    return code


async def run_submitted(service: ImagineService, stop: StopSignals) -> Outcome | None:
    """Have the command's queued jobs run; the outcome to end with when the engine could not run them, else None.
    Raises CommandInterruptedError when a stop signal came first."""
    try:
        await stop.interruptible(service.run_own_jobs())
    except ImagineError as error:
        return EXIT_FAILED, f"error: {error}"
    return None


async def deliver_grid(
    service: ImagineService, job_id: int, output: OutputTarget | None, *, report_safety: bool
) -> Outcome:
    """Print a rendered job's grid (written to ``output`` first, when given) and its image paths; with
    ``report_safety``, also which images the image safety check flagged."""
    from bot.operations.generate_command import write_grid

    files = await service.member.job(Actor.console(), job_id)
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
    if report_safety and job.safety.flagged:
        named = job.safety.images_named(len(images))
        print(f"flagged by the image safety check: {named} ({job.safety.reason})", file=sys.stderr)
    for image in images:
        print(image.path)
    return EXIT_OK, None


async def end_own_jobs(service: ImagineService, *, grace_s: float) -> list[int]:
    """Cancel (and refund) the jobs this command queued that did not end, then stop the engine and close the
    database. The ids cancelled."""
    cancelled: list[int] = []
    try:
        cancelled = [job.id for job in await service.cancel_unfinished_own_jobs(CONSOLE_ACTOR)]
    except (sqlite3.Error, ImagineError) as error:  # their lease runs out: the next start cancels them
        log.error("could not cancel job(s) %s: %s", sorted(service.own_jobs), error)
    finally:
        await service.close(engine_grace_s=grace_s)
    return cancelled


def job_list(job_ids: Sequence[int]) -> str:
    """``job 12`` or ``jobs 12, 13``."""
    return f"job {job_ids[0]}" if len(job_ids) == 1 else f"jobs {', '.join(str(job_id) for job_id in job_ids)}"


class ProgressLine:
    """A job command's progress on standard error: ``rendering job N: step i/n``, rewritten in place on one line."""

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
