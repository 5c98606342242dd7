"""The native API's /describe: ask for four prompts for an image, read them, and run one as /imagine.

Through :attr:`bot.core.ImagineService.describe` as the key's member, like Discord's /describe: the request is checked
before the image is decoded, the image like any upload, the job charged and queued (its cost in the answer); a
suggestion holding a word of the key's server's blocklist is hidden (``prompt`` null, ``offered`` false); running a
suggestion is checked and charged exactly as /imagine of its prompt.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from bot.core import Description
from web.images_in import check_sizes, decode_in_thread
from web.job_views import created_out, job_out
from web.native_common import SUBMIT_ROUTE, Member, errors, lane_of, service_of
from web.schemas import MAX_ID, CreatedOut, JobOut, LaneName

router = APIRouter(tags=["describe"])

JobId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="the describe job's id")]
Index = Annotated[int, PathParam(ge=0, le=3, description="0-based place of the suggestion")]


class DescribeIn(BaseModel):
    """An image to describe."""

    model_config = {"extra": "forbid"}

    image: str = Field(min_length=1, description="the image: base64 or a data: URI (PNG, JPEG or WebP)")
    lane: LaneName | None = Field(default=None, description="this job's lane instead of your default")


class SuggestionOut(BaseModel):
    index: int = Field(description="0-based place (the Discord button's number minus one)")
    prompt: str | None = Field(description="the prompt, as /imagine takes it; null when it holds a blocked word")
    offered: bool = Field(description="whether POST .../suggestions/{index}/imagine may run it")


class DescriptionOut(BaseModel):
    """A describe job and its suggestions (none until it completed)."""

    job: JobOut
    suggestions: list[SuggestionOut]


def description_out(description: Description) -> DescriptionOut:
    return DescriptionOut(
        job=job_out(description.job),
        suggestions=[
            SuggestionOut(index=item.index, prompt=item.prompt, offered=item.offered)
            for item in description.suggestions
        ],
    )


@router.post(
    "/describe",
    summary="Ask for four prompts that could have made an image (as /describe)",
    **SUBMIT_ROUTE,
)
async def describe(body: DescribeIn, request: Request, actor: Member) -> CreatedOut:
    """Queues a describe job (a small job: 1 credit in the fast lane by default); read its suggestions with ``GET
    /describe/{id}`` once it completed (or follow ``/jobs/{id}/events``). Refused before anything is charged when
    this server cannot describe, or the image is too large or not an image."""
    service = service_of(request)
    limits = service.upload_limits
    prepared = await service.describe.prepare(actor)
    check_sizes([(body.image, "image")], limits)
    received = await service.receive_image(await decode_in_thread(body.image, limits))
    admitted = await service.submit(
        actor, [service.describe.attach(prepared, received)], lane=lane_of(body.lane), uploads=[received.staged]
    )
    return created_out(admitted)


@router.get(
    "/describe/{job_id}",
    response_model=DescriptionOut,
    summary="One of your describe jobs and its suggestions",
    responses=errors(404),
)
async def get_description(job_id: JobId, request: Request, actor: Member) -> DescriptionOut:
    return description_out(await service_of(request).describe.description(actor, job_id))


@router.post(
    "/describe/{job_id}/suggestions/{index}/imagine",
    summary="Run a suggestion as /imagine (as its Discord button)",
    **SUBMIT_ROUTE,
)
async def imagine_suggestion(job_id: JobId, index: Index, request: Request, actor: Member) -> CreatedOut:
    """Queues /imagine of the suggestion's prompt for you, checked and charged as if you had typed it."""
    service = service_of(request)
    prepared = await service.describe.prepare_imagine(actor, job_id, index)
    return created_out(await service.submit(actor, prepared))
