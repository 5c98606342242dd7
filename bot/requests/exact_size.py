"""An exact image size and an image count asked for by the APIs (A1111's width, height and batch_size), checked
like ``--ar``: against the model's size multiple, the server's pixel limit and its images per job. Pure."""

from __future__ import annotations

from dataclasses import replace

from bot.errors import PromptError
from bot.jobs import RenderParams
from bot.requests.request_options import RequestOptions
from config.settings import Settings

MIN_SIDE = 64
MAX_SIDE_RATIO = 4


def sized_and_counted(params: RenderParams, options: RequestOptions, settings: Settings) -> RenderParams:
    """``params`` with an exact size and an image count the request asked for (the APIs), each checked against the
    model and the server's limits like ``--ar``. Raises PromptError naming the option to fix."""
    changes: dict[str, int] = {}
    if options.images is not None:
        if not 1 <= options.images <= settings.images_per_job:
            raise PromptError(
                f"a job makes 1 to {settings.images_per_job} images; {options.images} is out of range", flag="images"
            )
        if not params.sweep:
            changes["images"] = options.images
    if options.size is not None:
        width, height = options.size
        multiple = settings.registry[params.model].size_multiple
        if min(width, height) < MIN_SIDE or width % multiple or height % multiple:
            raise PromptError(
                f"{width}x{height}: width and height must be multiples of {multiple} and at least {MIN_SIDE}",
                flag="size",
            )
        if max(width, height) > MAX_SIDE_RATIO * min(width, height):
            raise PromptError(f"{width}x{height} is more extreme than 1:4; use a squarer size", flag="size")
        if width * height > settings.max_pixels:
            raise PromptError(
                f"{width}x{height} is more pixels than this server allows ({settings.max_pixels}); use a smaller size",
                flag="size",
            )
        changes.update(width=width, height=height)
    return replace(params, **changes) if changes else params
