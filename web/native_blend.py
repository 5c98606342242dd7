"""The native API's image prompts: ``POST /blend`` (2 to 5 images mixed into one grid, as /blend does) and the
``image_prompts`` of ``POST /jobs`` (:func:`received_image_prompts`).

Every request goes through :class:`bot.core.ImagineService` as the key's member: the count, the shape, the member's
model and its IP-Adapter are checked before any image is decoded; each image is refused by its size before it is
decoded, then checked like any upload; nothing is charged until all of that passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from bot.core import (
    ImagineService,
    Prepared,
    StagedUpload,
    awaited_image_prompts,
)
from web.images_in import check_sizes, decode_in_thread
from web.job_views import created_out
from web.native_common import SUBMIT_ROUTE, Member, lane_of, service_of
from web.schemas import CreatedOut, LaneName

router = APIRouter(tags=["jobs"])

IMAGE_PROMPT = "image prompt"
"""How messages name one of the images (the same words Discord's do)."""


class BlendIn(BaseModel):
    """What ``/blend`` takes: its images and the shape of the result."""

    model_config = {"extra": "forbid"}

    images: list[str] = Field(
        min_length=1, max_length=10, description="2 to 5 images to mix: base64 or data: URIs (PNG, JPEG or WebP)"
    )
    dimensions: Literal["portrait", "square", "landscape"] = Field(
        default="square", description="portrait 2:3, square 1:1 or landscape 3:2"
    )
    lane: LaneName | None = Field(default=None, description="this job's lane instead of your default")


async def received_image_prompts(
    service: ImagineService, prepared: Sequence[Prepared], images: Sequence[str]
) -> tuple[list[Prepared], list[StagedUpload]]:
    """The jobs with their image prompts in place (the Discord links of the prompt, fetched, then ``images``) and
    their staged uploads; unchanged when they await none. Each image is refused by its size before any is decoded.
    Raises ImagineError (UploadError, PromptError) saying what to send instead."""
    if not awaited_image_prompts(prepared):
        return list(prepared), []
    limits = service.upload_limits
    check_sizes(((text, IMAGE_PROMPT) for text in images), limits)
    data = [await decode_in_thread(text, limits, IMAGE_PROMPT) for text in images]
    return await service.image_prompts.receive(prepared, data)


@router.post(
    "/blend",
    summary="Mix 2 to 5 images into a grid (as /blend)",
    **SUBMIT_ROUTE,
)
async def create_blend(body: BlendIn, request: Request, actor: Member) -> CreatedOut:
    """The images go through the IP-Adapter of your model (your /settings model, steps and sampler apply) with an
    empty text prompt; the job is a ``blend`` with its own price, answered with its cost and your balance."""
    service = service_of(request)
    prepared = await service.image_prompts.prepare_blend(actor, len(body.images), body.dimensions)
    prepared, uploads = await received_image_prompts(service, prepared, body.images)
    return created_out(await service.submit(actor, prepared, lane=lane_of(body.lane), uploads=uploads))
