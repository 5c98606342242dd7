"""``python -m bot describe IMAGE``: four prompts for an image, as /describe writes them, without Discord.

The image is read and checked like a Discord upload, and whether this server can describe at all is known, before
any database is opened or engine started. The job then goes through the queue and a real engine process as the
console's (free, like ``generate``); the suggestions are printed one per line on standard output, ready to hand to
``generate``. Nothing it queues outlives it: ending any other way than with its job done cancels the job.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.actors import Actor
from bot.errors import ImagineError, PromptError
from bot.jobs import Status
from bot.operations.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from bot.operations.interrupts import StopSignals
from bot.operations.shell_job import Outcome, run_own_job, run_submitted
from bot.requests.describe import check_describe
from bot.requests.request_options import ImageInput
from bot.requests.shell_files import upload_limits
from bot.requests.upload_store import stage_upload
from bot.requests.uploads import CheckedImage, UploadError, check_upload, read_upload_file
from config.settings import Settings

if TYPE_CHECKING:
    from bot.application.service import ImagineService

log = logging.getLogger(__name__)


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
    try:  # every refusal before any database is opened or engine started
        check_describe(settings)
        checked = await asyncio.to_thread(check_image_file, settings, image)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG

    async def step(service: ImagineService) -> Outcome:
        return await _describe_own_job(service, stop, checked)

    return await run_own_job(settings, stop, step, progress=False)


async def _describe_own_job(service: ImagineService, stop: StopSignals, checked: CheckedImage) -> Outcome:
    """Queue the describe job, have it run, print its suggestions; the exit code and the line to end with."""
    from bot.application.service import ReceivedImage

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
    failed = await run_submitted(service, stop)
    if failed is not None:
        return failed
    description = await service.describe.description(actor, job_id)
    if description.job.status is not Status.COMPLETED:
        return EXIT_FAILED, f"error: job {job_id} {description.job.status.value}: {description.job.error}"
    print(f"job {job_id}: {len(description.suggestions)} suggestions", file=sys.stderr)
    for item in description.suggestions:
        print(item.prompt)
    return EXIT_OK, None
