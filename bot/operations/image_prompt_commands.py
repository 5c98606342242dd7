"""``python -m bot blend A.png B.png [--dimensions square] [-o OUT]``: a /blend from the owner's shell without
Discord (its arguments, and ``generate``'s ``--image-prompt``/``--iw``, are in
:mod:`bot.operations.image_prompt_arguments`).

The files are read and checked like Discord uploads (size, pixels, decompression bombs) and the request like a
member's (the image count, the shape, the model's IP-Adapter) before any database is opened or engine started; the
blend then goes through the same queue, credits and engine process as every job, as the console. What it queued
never outlives it (see :mod:`bot.operations.generate_command`).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.actors import Actor
from bot.errors import ImagineError
from bot.operations.exit_codes import EXIT_CONFIG
from bot.operations.generate_command import OutputTarget
from bot.operations.interrupts import StopSignals
from bot.operations.shell_job import Outcome, deliver_grid, run_own_job, run_submitted
from bot.requests.blend import prepare_blend
from bot.requests.image_prompts import attach_image_prompts
from bot.requests.request_options import ImageInput
from bot.requests.shell_files import upload_limits
from bot.requests.upload_store import stage_upload
from bot.requests.uploads import CheckedImage, UploadError, check_upload, read_upload_file
from config.settings import Settings

if TYPE_CHECKING:
    from bot.application.service import ImagineService


def check_blend_files(settings: Settings, files: Sequence[Path]) -> list[CheckedImage]:
    """Read (size first) and check each file like a Discord upload. Raises ImagineError naming the file."""
    limits = upload_limits(settings)
    checked: list[CheckedImage] = []
    for path in files:
        try:
            checked.append(check_upload(read_upload_file(path, limits), limits=limits))
        except UploadError as error:
            raise UploadError(f"{path}: {error}") from None
    return checked


async def blend(settings: Settings, files: Sequence[Path], dimensions: str, output: OutputTarget | None) -> int:
    """Render one /blend of ``files`` through the queue and a real engine process; print the image paths. Ctrl-C or
    SIGTERM cancels (and refunds) it and exits 130, as ``generate`` does."""
    with StopSignals(asyncio.get_running_loop()) as stop:
        return await _blend(settings, files, dimensions, output, stop)


async def _blend(
    settings: Settings, files: Sequence[Path], dimensions: str, output: OutputTarget | None, stop: StopSignals
) -> int:
    try:  # every refusal before any database is opened or engine started
        prepare_blend(settings, len(files), dimensions, owner=True)
        checked = await asyncio.to_thread(check_blend_files, settings, files)
    except ImagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG

    async def step(service: ImagineService) -> Outcome:
        return await _render_blend(service, stop, checked, dimensions, output)

    return await run_own_job(settings, stop, step, progress=True)


async def _render_blend(
    service: ImagineService,
    stop: StopSignals,
    checked: Sequence[CheckedImage],
    dimensions: str,
    output: OutputTarget | None,
) -> Outcome:
    """Stage the files, queue the blend as the console, have it rendered, write the grid; the exit code and the
    line to end with (None: done). Raises CommandInterruptedError when a stop signal came first."""
    console = Actor.console()
    staged = []
    try:
        for image in checked:
            staged.append(await asyncio.to_thread(stage_upload, image, service.uploads_dir))
        prepared = await service.image_prompts.prepare_blend(console, len(checked), dimensions)
        inputs = [ImageInput(item.path, image.width, image.height) for item, image in zip(staged, checked, strict=True)]
        submitted = (await service.submit(console, attach_image_prompts(prepared, inputs), uploads=staged)).jobs[0]
    except ImagineError as error:
        for item in staged:
            item.discard()
        return EXIT_CONFIG, f"error: {error}"
    except BaseException:
        for item in staged:
            item.discard()
        raise
    failed = await run_submitted(service, stop)
    if failed is not None:
        return failed
    return await deliver_grid(service, submitted.job.id, output, report_safety=False)
