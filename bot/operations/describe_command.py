"""``python -m bot describe IMAGE``: four prompts for an image, as /describe writes them, without Discord.

The image is read and checked like a Discord upload, and whether this server can describe at all is known, before
any database is opened or engine started. The job then goes through the queue and a real engine process as the
console's (free, like ``generate``); the suggestions are printed one per line on standard output, ready to hand to
``generate``. Nothing it queues outlives it: ending any other way than with its job done cancels the job.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.actors import Actor
from bot.errors import ImagineError, PromptError
from bot.jobs import Status
from bot.operations.db_check import database_problem
from bot.operations.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from bot.operations.interrupts import EXIT_INTERRUPTED, CommandInterruptedError, StopSignals, say_interrupted
from bot.requests.describe import check_describe
from bot.requests.request_options import ImageInput
from bot.requests.shell_files import upload_limits
from bot.requests.upload_store import stage_upload
from bot.requests.uploads import CheckedImage, UploadError, check_upload, read_upload_file
from bot.scheduling.ledger import CONSOLE_ACTOR
from config.settings import Settings

if TYPE_CHECKING:
    from bot.application.service import ImagineService

log = logging.getLogger(__name__)

INTERRUPTED_ENGINE_GRACE_S = 3.0


def check_image_file(settings: Settings, image: Path) -> CheckedImage:
    """Read (size checked first) and check the image like a Discord upload. Raises PromptError naming the file."""
    limits = upload_limits(settings)
    try:
        return check_upload(read_upload_file(image, limits), limits=limits)
    except UploadError as error:
        raise PromptError(f"{image}: {error}") from None


async def describe(settings: Settings, image: Path) -> int:
    """Describe ``image`` through the queue and a real engine; print its suggestions. Ctrl-C or SIGTERM cancels the
    job and exits 130."""
    with StopSignals(asyncio.get_running_loop()) as stop:
        return await _describe(settings, image, stop)


async def _describe(settings: Settings, image: Path, stop: StopSignals) -> int:
    from bot.application.service import ImagineService

    try:  # every refusal before any database is opened or engine started
        check_describe(settings)
        checked = await asyncio.to_thread(check_image_file, settings, image)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if stop.stopped:
        return say_interrupted()
    problem = database_problem(settings.database_file)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        service = await ImagineService.open(settings, only_own_jobs=True)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (sqlite3.Error, OSError) as error:
        print(f"error: could not open the database {settings.database_file}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    stop.on_repeat = service.abort_rendering
    try:
        code, line = await _describe_own_job(service, stop, checked)
    except CommandInterruptedError:
        code, line = EXIT_INTERRUPTED, "interrupted"
    except BaseException:
        await _end_own_jobs(service, grace_s=INTERRUPTED_ENGINE_GRACE_S)
        raise
    cancelled = await _end_own_jobs(service, grace_s=INTERRUPTED_ENGINE_GRACE_S if stop.stopped else 10.0)
    if line is not None:
        if cancelled:
            line += f"; job {', '.join(str(job_id) for job_id in cancelled)} cancelled"
        print(line, file=sys.stderr, flush=True)
    return code


async def _describe_own_job(
    service: ImagineService, stop: StopSignals, checked: CheckedImage
) -> tuple[int, str | None]:
    """Queue the describe job, have it run, print its suggestions; the exit code and the line to end with."""
    from bot.application.service import ReceivedImage

    stop.check()
    actor = Actor.console()
    staged = await asyncio.to_thread(stage_upload, checked, service.uploads_dir)
    try:
        prepared = await service.describe.prepare(actor)
        received = ReceivedImage(staged, ImageInput(staged.path, checked.width, checked.height))
        admitted = await service.submit(actor, [service.describe.attach(prepared, received)], uploads=[staged])
    except ImagineError as error:
        staged.discard()
        return EXIT_CONFIG, f"error: {error}"
    except BaseException:
        staged.discard()
        raise
    job_id = admitted.jobs[0].job.id
    try:
        await stop.interruptible(service.run_own_jobs())
    except ImagineError as error:
        return EXIT_FAILED, f"error: {error}"
    description = await service.describe.description(actor, job_id)
    if description.job.status is not Status.COMPLETED:
        return EXIT_FAILED, f"error: job {job_id} {description.job.status.value}: {description.job.error}"
    print(f"job {job_id}: {len(description.suggestions)} suggestions", file=sys.stderr)
    for item in description.suggestions:
        print(item.prompt)
    return EXIT_OK, None


async def _end_own_jobs(service: ImagineService, *, grace_s: float) -> list[int]:
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
