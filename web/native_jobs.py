"""The native API's jobs: ask for images (as /imagine, /edit and /sweep do), list and read your jobs, fetch their
images, follow their events, cancel them, and press their buttons (upscale, vary, reroll, zoom, pan).

Every route goes through :class:`bot.core.ImagineService` as the key's member; another member's job answers 404
``job_not_found`` whatever is asked of it (job ids are sequential: whether it exists is not told).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse

from bot.core import (
    Actor,
    ImageInput,
    ImagineService,
    JobFiles,
    JobPlace,
    ReceivedImage,
    RequestOptions,
    StagedUpload,
)
from web.errors import ApiError
from web.images_in import check_sizes, decode_in_thread
from web.job_views import ACTIONS, actions_for, created_out, job_out
from web.native_blend import received_image_prompts
from web.native_common import SUBMIT_ROUTE, Member, errors, feed_of, lane_of, service_of
from web.schemas import MAX_ID, ActionIn, CreatedOut, CreateJobIn, JobOut
from web.sse import JobStream

log = logging.getLogger(__name__)

router = APIRouter(tags=["jobs"])

JobId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="the job's id")]
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
CONTROL_IMAGE = "control image"
IMAGE_CACHE = "private, max-age=31536000, immutable"
"""A job's files never change once written; only their member may read them."""


def with_model_flag(prompt: str, model: str | None) -> str:
    """The ``model`` option as the flag it stands for (the parser then checks it), as /imagine's option is."""
    return f"{prompt} --model {model}" if model else prompt


async def places_by_job(service: ImagineService, actor: Actor, files: list[JobFiles]) -> dict[int, JobPlace]:
    """The queue places of those of ``files`` that wait (one read of the member's overview, only if any waits)."""
    if not any(not item.job.status.terminal for item in files):
        return {}
    overview = await service.member.overview(actor)
    return {place.job.id: place for place in overview.jobs}


def job_with_place(files: JobFiles, places: dict[int, JobPlace]) -> JobOut:
    place = places.get(files.job.id)
    if place is None:
        return job_out(files.job, files.images)
    return job_out(files.job, files.images, position=place.position, eta_s=place.eta_s)


@router.post(
    "/jobs",
    summary="Ask for images (as /imagine, /edit and /sweep)",
    **SUBMIT_ROUTE,
)
async def create_job(body: CreateJobIn, request: Request, actor: Member) -> CreatedOut:
    """The prompt takes the same --flags as /imagine. With ``image`` it starts from that image (img2img), with
    ``mask`` too it repaints the mask's white part; ``sweeps`` make one labelled grid. Every request is checked
    before anything is charged; the images only when the rest passed, by size before they are decoded."""
    service = service_of(request)
    limits = service.upload_limits
    uploads = ((body.image, "image"), (body.mask, "mask"), (body.control_image, CONTROL_IMAGE))
    sent = [(text, what) for text, what in uploads if text is not None]
    announced = RequestOptions(
        image=ImageInput.announced() if body.image is not None else None,
        mask=ImageInput.announced() if body.mask is not None else None,
        strength=body.strength,
        sweeps=tuple(body.sweeps),
        images=body.images,
        size=(body.width, body.height) if body.width is not None and body.height is not None else None,
        control=ImageInput.announced() if body.control_image is not None else None,
        control_mode=body.control_mode,
        image_prompts=tuple(ImageInput.announced() for _text in body.image_prompts),
    )
    prompt = with_model_flag(body.prompt, body.model)
    if body.control_weight is not None:  # as --cw, so the parser checks it as it does a typed one
        prompt = f"{prompt} --cw {body.control_weight:g}"
    if body.image_weight is not None:  # as --iw, likewise
        prompt = f"{prompt} --iw {body.image_weight:g}"
    prepared = await service.prepare(actor, prompt, announced)
    check_sizes(sent, limits)
    received: dict[str, ReceivedImage] = {}
    prompt_uploads: list[StagedUpload] = []
    try:
        for text, what in sent:
            data = await decode_in_thread(text, limits, what)
            received[what] = await service.receive_image(data, mask=what == "mask")
        if received:
            prepared = service.attach_images(
                prepared, received.get("image"), received.get("mask"), received.get(CONTROL_IMAGE)
            )
        prepared, prompt_uploads = await received_image_prompts(service, prepared, body.image_prompts)
    except BaseException:
        for item in received.values():
            item.staged.discard()
        raise
    staged = [item.staged for item in received.values()] + prompt_uploads
    admitted = await service.submit(actor, prepared, lane=lane_of(body.lane), uploads=staged)
    return created_out(admitted)


@router.get("/jobs", response_model=list[JobOut], summary="Your jobs, newest first", responses=errors())
async def list_jobs(
    request: Request,
    actor: Member,
    limit: Annotated[int, Query(ge=1, le=200, description="at most this many")] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only jobs with a smaller id (next page)")] = None,
) -> list[JobOut]:
    service = service_of(request)
    files = await service.member.jobs(actor, limit=limit, before=before)
    places = await places_by_job(service, actor, files)
    return [job_with_place(item, places) for item in files]


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One of your jobs", responses=errors(404))
async def get_job(job_id: JobId, request: Request, actor: Member) -> JobOut:
    service = service_of(request)
    files = await service.member.job(actor, job_id)
    return job_with_place(files, await places_by_job(service, actor, [files]))


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Cancel one of your jobs (refunded)",
    responses=errors(400, 404),
)
async def cancel_job(job_id: JobId, request: Request, actor: Member) -> JobOut:
    """A queued or running job stops and its credits come back; an ended one answers 400."""
    job = await service_of(request).member.cancel(actor, job_id)
    return job_out(job)


@router.post(
    "/jobs/{job_id}/actions",
    summary="Press a result button: upscale, vary, reroll, zoom out or pan",
    **SUBMIT_ROUTE,
)
async def follow_up(job_id: JobId, body: ActionIn, request: Request, actor: Member) -> CreatedOut:
    """The buttons Discord shows under the result: a grid offers ``upscale`` and ``vary`` of image ``index``
    (0-based) and ``reroll``; an upscaled image offers ``vary_subtle``, ``vary_strong``, ``zoom_out_1.5``,
    ``zoom_out_2`` and ``pan_*``; a sweep none. The job's ``actions`` lists what it offers now."""
    service = service_of(request)
    files = await service.member.job(actor, job_id)
    offered = actions_for(files.job)
    if offered and body.action not in offered:
        raise ApiError(
            422,
            "action_not_offered",
            f"job {job_id} ({files.job.kind.value}) offers {', '.join(offered)}; `{body.action}` is not one of them",
        )
    prepared = await service.prepare_follow_up(actor, job_id, ACTIONS[body.action], body.index)
    return created_out(await service.submit(actor, [prepared]))


async def _file_response(service: ImagineService, actor: Actor, job_id: int, index: int | None) -> FileResponse:
    """Image ``index`` of the member's job (its grid when None), inline, cached; 404 when it has none (any more)."""
    files = await service.member.job(actor, job_id)
    if index is None:
        path = files.job.grid_path
        missing = f"job {job_id} has no grid ({files.job.status.value})"
    else:
        path = next((image.path for image in files.images if image.index == index), None)
        missing = f"job {job_id} has no image {index} ({files.job.status.value})"
    if path is None:
        raise ApiError(404, "image_not_found", missing)
    found = Path(path)
    if not await asyncio.to_thread(found.is_file):
        raise ApiError(404, "image_not_found", f"the files of job {job_id} are no longer kept")
    suffix = found.suffix.lower()
    name = f"imagine_{job_id}" if index is None else f"imagine_{job_id}_{index}"
    return FileResponse(
        found,
        media_type=IMAGE_TYPES.get(suffix, "application/octet-stream"),
        filename=f"{name}{suffix}",
        content_disposition_type="inline",
        headers={"Cache-Control": IMAGE_CACHE},
    )


BINARY = {"schema": {"type": "string", "format": "binary"}}


def _answers(description: str, content: dict[str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """A route's documented answers: 200 with ``content`` (each media type's schema) and the errors of 404."""
    return {200: {"description": description, "content": content}, **errors(404)}


@router.get(
    "/jobs/{job_id}/images/{index}",
    response_class=FileResponse,
    summary="One image of a job: a PNG with its parameters",
    responses=_answers("the PNG, with the A1111 parameters text chunk", {"image/png": BINARY}),
)
async def get_image(
    job_id: JobId,
    index: Annotated[int, PathParam(ge=0, le=99, description="0-based place in the grid")],
    request: Request,
    actor: Member,
) -> FileResponse:
    return await _file_response(service_of(request), actor, job_id, index)


@router.get(
    "/jobs/{job_id}/grid",
    response_class=FileResponse,
    summary="A job's grid (JPEG; a sweep's labelled grid is a PNG)",
    responses=_answers("the grid image", {"image/jpeg": BINARY, "image/png": BINARY}),
)
async def get_grid(job_id: JobId, request: Request, actor: Member) -> FileResponse:
    return await _file_response(service_of(request), actor, job_id, None)


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    summary="A job's events as Server-Sent Events",
    responses=_answers(
        "`queued`, `position`, `started`, `progress`, `requeued`, then one of `completed`, `failed`, `cancelled`; "
        "a job that ended gets its end at once",
        {"text/event-stream": {"schema": {"type": "string"}}},
    ),
)
async def job_events(job_id: JobId, request: Request, actor: Member) -> StreamingResponse:
    service = service_of(request)
    await service.member.job(actor, job_id)  # 404 before the stream starts
    stream = JobStream(request, service, feed_of(request), actor, job_id)
    return StreamingResponse(
        stream.events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
