"""``POST /txt2img`` and ``POST /img2img``: an A1111 generation request through the same door as every job, then
the blocking wait A1111 clients expect.

:meth:`~bot.core.ImagineService.prepare` checks the member's rules, limits and moderation; the init image and mask
are received and checked like any upload; :meth:`~bot.core.ImagineService.submit` charges credits and checks bans
and queue limits (all ``n_iter`` jobs charged together, or none). The request then waits until its jobs end, as
A1111 does, and answers with their images (the PNG files the engine wrote, with their ``parameters`` chunk),
``parameters`` and ``info``.

A client that goes away while it waits does not cancel its jobs: they render, stay charged and land in the member's
gallery (``GET /api/v1/jobs``). That is what an A1111 user expects (A1111 itself finishes a generation whose client
left), and it keeps a proxy's or client's timeout during a long queue from throwing paid work away; ``POST
/interrupt`` is the way to stop them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from PIL import Image
from pydantic import BaseModel, Field

from bot.core import (
    Actor,
    ImageResult,
    ImagineService,
    Job,
    JobFiles,
    Lane,
    ModelChoice,
    Prepared,
    ReceivedImage,
    Status,
    model_choice,
)
from config.settings import Settings
from web.a1111_common import GENERATION_ERRORS, ActorDep, decode_a1111_image, refusal, waiting_jobs
from web.a1111_info import filled_parameters, generation_info
from web.a1111_mapping import resolve_checkpoint, translate
from web.a1111_requests import A1111RequestError, Img2ImgRequest, Txt2ImgRequest
from web.errors import ApiError
from web.feed import ENDS, JobFeed
from web.native_common import feed_of, service_of, settings_of

log = logging.getLogger(__name__)

RECHECK_S = 30.0
"""While a request waits for its jobs, how often it reads their state besides the events (a safety net)."""


class GenerationResponse(BaseModel):
    """A1111's ``TextToImageResponse``/``ImageToImageResponse``."""

    images: list[str] = Field(description="each image as base64 PNG (with its parameters chunk)")
    parameters: dict[str, Any] = Field(description="the request as received, with its defaults filled in")
    info: str = Field(description="a JSON string: A1111's generation info (prompt, seeds, sampler, infotexts, ...)")


router = APIRouter()


async def _receive(service: ImagineService, text: str, what: str, *, mask: bool) -> ReceivedImage:
    data = await asyncio.to_thread(decode_a1111_image, text, service.upload_limits, what)
    return await service.receive_image(data, mask=mask)


async def _prepare(
    service: ImagineService, settings: Settings, actor: Actor, body: Txt2ImgRequest
) -> tuple[list[Prepared], Lane | None]:
    """The jobs of an A1111 request, prepared for ``actor`` (every rule checked, nothing charged yet)."""
    models = service.member.models(actor)
    override_value = (body.override_settings or {}).get("sd_model_checkpoint")
    try:
        override = resolve_checkpoint(str(override_value), models) if override_value else None
    except A1111RequestError as error:
        raise refusal(error) from None
    model = override or (await service.member.preferences(actor)).model or settings.model
    choice = _choice(settings, model)
    try:
        translated = translate(
            body,
            images_per_job=settings.images_per_job,
            max_jobs=settings.max_prompts_per_message,
            available_samplers=service.member.samplers(),
            model_samplers=choice.samplers if choice is not None else None,
            model=model,
            model_override=override,
            guidance=choice.guidance if choice is not None else "cfg",
        )
    except A1111RequestError as error:
        raise refusal(error) from None
    prepared: list[Prepared] = []
    for prompt in translated.prompts:
        prepared.extend(await service.prepare(actor, prompt, translated.options))
    if len(prepared) > settings.max_prompts_per_message:
        raise ApiError(
            422,
            "invalid_request",
            f"this asks for {len(prepared)} jobs; this server takes at most {settings.max_prompts_per_message} at once",
        )
    return prepared, translated.lane


def _choice(settings: Settings, model: str) -> ModelChoice | None:
    """What ``model`` takes (its samplers, how it is guided); None for a name that is no model (the core says so)."""
    spec = settings.registry.get(model)
    return model_choice(model, spec, settings.max_steps) if spec is not None else None


@contextlib.asynccontextmanager
async def _registered(request: Request, actor: Actor, job_ids: Sequence[int]) -> AsyncIterator[None]:
    waiting = waiting_jobs(request).setdefault(actor.user_id, set())
    waiting.update(job_ids)
    try:
        yield
    finally:
        waiting.difference_update(job_ids)
        if not waiting:
            waiting_jobs(request).pop(actor.user_id, None)


async def wait_for_jobs(service: ImagineService, feed: JobFeed, actor: Actor, job_ids: Sequence[int]) -> list[JobFiles]:
    """Each job once it ended (completed, failed or cancelled), in order; watched before its state is read, so an
    end between the two is never missed."""
    ended: list[JobFiles] = []
    async with contextlib.AsyncExitStack() as stack:
        watchers = [await stack.enter_async_context(feed.watch(job_id)) for job_id in job_ids]
        for job_id, watcher in zip(job_ids, watchers, strict=True):
            files = await service.member.job(actor, job_id)
            while not files.job.status.terminal:
                event = await watcher.next(RECHECK_S)
                if event is None or event.kind in ENDS:
                    files = await service.member.job(actor, job_id)
            ended.append(files)
    return ended


def _png_text(data: bytes) -> str:
    """The parameters text of a PNG the engine wrote ('' when it has none)."""
    with Image.open(io.BytesIO(data), formats=("PNG",)) as image:
        value = image.info.get("parameters")
    return value if isinstance(value, str) else ""


def _read_images(images: Sequence[ImageResult]) -> list[tuple[bytes, str]]:
    read = []
    for image in images:
        data = Path(image.path).read_bytes()
        read.append((data, _png_text(data)))
    return read


async def _generate(request: Request, actor: Actor, body: Txt2ImgRequest) -> GenerationResponse:
    service, settings = service_of(request), settings_of(request)
    prepared, lane = await _prepare(service, settings, actor, body)
    received: list[ReceivedImage] = []
    try:
        image = mask = None
        if isinstance(body, Img2ImgRequest) and body.init_images:
            image = await _receive(service, body.init_images[0], "init image", mask=False)
            received.append(image)
            if body.mask:
                mask = await _receive(service, body.mask, "mask", mask=True)
                received.append(mask)
        prepared = service.attach_images(prepared, image, mask)
    except BaseException:
        for item in received:
            item.staged.discard()
        raise
    admitted = await service.submit(actor, prepared, lane=lane, uploads=[item.staged for item in received])
    job_ids = [item.job.id for item in admitted.jobs]
    log.info("A1111 %s of member %s: job(s) %s", request.url.path, actor.user_id, job_ids)
    async with _registered(request, actor, job_ids):
        ended = await wait_for_jobs(service, feed_of(request), actor, job_ids)
    choice = _choice(settings, admitted.jobs[0].job.params.model)
    return await _answer(body, ended, distilled=choice is not None and choice.guidance != "cfg")


async def _answer(body: Txt2ImgRequest, ended: Sequence[JobFiles], *, distilled: bool) -> GenerationResponse:
    completed = [files for files in ended if files.job.status is Status.COMPLETED and files.images]
    failures = [_ended_message(files.job) for files in ended if files not in completed]
    if not completed:
        raise _not_made([files.job for files in ended], failures)
    read = [await asyncio.to_thread(_read_images, files.images) for files in completed]
    images = [data for found in read for data, _text in found]
    infotexts = [text for found in read for _data, text in found]
    info = generation_info(
        [(files.job, files.images) for files in completed],
        infotexts,
        batch_size=completed[0].job.params.images,
        styles=body.styles if isinstance(body.styles, list) else (),
        failures=failures,
        distilled=distilled,
    )
    encoded = [base64.b64encode(data).decode("ascii") for data in images] if body.send_images is not False else []
    return GenerationResponse(
        images=encoded, parameters=filled_parameters(body, completed[0].job, distilled=distilled), info=json.dumps(info)
    )


def _ended_message(job: Job) -> str:
    if job.status is Status.CANCELLED:
        return f"job {job.id} was cancelled before it finished; its credits were refunded"
    return f"job {job.id} failed: {job.error or 'the engine gave no reason'}; its credits were refunded"


def _not_made(jobs: Sequence[Job], failures: Sequence[str]) -> ApiError:
    """No job made an image: 409 when they were cancelled (``/interrupt``), 500 when one failed."""
    if all(job.status is Status.CANCELLED for job in jobs):
        return ApiError(409, "job_cancelled", "; ".join(failures))
    return ApiError(500, "job_failed", "; ".join(failures))


@router.post("/txt2img", response_model=GenerationResponse, responses=GENERATION_ERRORS)
async def txt2img(request: Request, actor: ActorDep, body: Txt2ImgRequest) -> GenerationResponse:
    """Render a prompt, as A1111's txt2img; answers when the job(s) ended (every ``n_iter`` job is charged)."""
    return await _generate(request, actor, body)


@router.post("/img2img", response_model=GenerationResponse, responses=GENERATION_ERRORS)
async def img2img(request: Request, actor: ActorDep, body: Img2ImgRequest) -> GenerationResponse:
    """Render from the first of ``init_images`` (inpaint the white part of ``mask`` when given), as A1111's
    img2img."""
    return await _generate(request, actor, body)
