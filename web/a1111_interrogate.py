"""``POST /interrogate``: a caption for an image, as A1111 answers it, from /describe.

``{"image": base64, "model": "clip"}`` queues a describe job for the key's member through the same door as Discord's
/describe (checked, charged as a describe: 1 credit in the fast lane by default), waits for it like ``txt2img`` does
(``/interrupt`` stops it) and answers ``{"caption": ...}``: its first suggestion that the key's server's blocklist
lets through, without the ``--ar`` flag /describe adds (A1111 clients give the size apart).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from bot.core import Status
from web.a1111_common import GENERATION_ERRORS, ActorDep, decode_a1111_image, error_responses, waiting_jobs
from web.a1111_generate import wait_for_jobs
from web.errors import ApiError
from web.native_common import feed_of, service_of

INTERROGATORS = ("clip",)
"""The ``model`` values answered (A1111's CLIP interrogator; this server's captioning model answers it)."""

router = APIRouter()


class InterrogateRequest(BaseModel):
    image: str = Field(min_length=1, description="the image as base64 or a data: URI")
    model: str = Field(default="clip", description="the interrogator: clip")


class InterrogateResponse(BaseModel):
    caption: str = Field(description="what the image shows, as a prompt")


@router.post(
    "/interrogate", response_model=InterrogateResponse, responses={**GENERATION_ERRORS, **error_responses(400)}
)
async def interrogate(request: Request, actor: ActorDep, body: InterrogateRequest) -> InterrogateResponse:
    """Describe an image (a /describe job, charged as one) and answer its caption."""
    if body.model not in INTERROGATORS:
        raise ApiError(
            422,
            "unknown_interrogator",
            f"interrogator `{body.model}` is not available here; use one of: {', '.join(INTERROGATORS)}",
        )
    service = service_of(request)
    prepared = await service.describe.prepare(actor)
    data = await asyncio.to_thread(decode_a1111_image, body.image, service.upload_limits, "image")
    received = await service.receive_image(data)
    admitted = await service.submit(actor, [service.describe.attach(prepared, received)], uploads=[received.staged])
    job_id = admitted.jobs[0].job.id
    waiting = waiting_jobs(request).setdefault(actor.user_id, set())
    waiting.add(job_id)
    try:
        [ended] = await wait_for_jobs(service, feed_of(request), actor, [job_id])
    finally:
        waiting.discard(job_id)
        if not waiting:
            waiting_jobs(request).pop(actor.user_id, None)
    job = ended.job
    if job.status is Status.CANCELLED:
        raise ApiError(
            409, "job_cancelled", f"job {job_id} was cancelled before it finished; its credits were refunded"
        )
    if job.status is not Status.COMPLETED:
        raise ApiError(500, "job_failed", f"job {job_id} failed: {job.error}; its credits were refunded")
    caption = (await service.describe.description(actor, job_id)).caption
    if caption is None:
        raise ApiError(422, "blocked_prompt", "every description of this image holds a word this server blocks")
    return InterrogateResponse(caption=caption)
