"""The AUTOMATIC1111-compatible API (``/sdapi/v1``): what A1111 clients (Discord bots such as AIYA, editor plugins,
scripts) call, answered by imaginebot's queue.

Every route needs an API key, sent as A1111's ``--api-auth`` sends credentials (HTTP Basic: the key is the
password, the user name is ignored) or as ``Authorization: Bearer <key>``; errors are this server's JSON errors.
A ``txt2img``/``img2img`` goes through the same door as every job: :meth:`~bot.core.ImagineService.prepare` (the
member's rules, limits and moderation), the init image and mask received and checked like any upload,
:meth:`~bot.core.ImagineService.submit` (credits, bans, queue limits; all ``n_iter`` jobs charged together, or none).
The request then waits until its jobs end, as A1111 does, and answers with their images (the PNG files the engine
wrote, with their ``parameters`` chunk), ``parameters`` and ``info``.

A client that goes away while it waits does not cancel its jobs: they render, stay charged and land in the member's
gallery (``GET /api/v1/jobs``). That is what an A1111 user expects (A1111 itself finishes a generation whose client
left), and it keeps a proxy's or client's timeout during a long queue from throwing paid work away; ``POST
/interrupt`` is the way to stop them.

The translations are pure functions in :mod:`web.a1111_mapping`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from bot.core import (
    Actor,
    ImageResult,
    ImagineError,
    ImagineService,
    Job,
    JobFiles,
    Lane,
    Prepared,
    ReceivedImage,
    Status,
    UploadError,
    UploadLimits,
    check_byte_size,
)
from config.settings import Settings
from web.a1111_mapping import (
    A1111RequestError,
    Img2ImgRequest,
    Txt2ImgRequest,
    filled_parameters,
    generation_info,
    job_timestamp,
    parse_infotext,
    progress_and_eta,
    resolve_checkpoint,
    sampler_items,
    scheduler_items,
    sd_model_item,
    text_items,
    translate,
)
from web.auth import current_actor
from web.errors import ApiError
from web.feed import ENDS, JobFeed

log = logging.getLogger(__name__)

RECHECK_S = 30.0
"""While a request waits for its jobs, how often it reads their state besides the events (a safety net)."""
METADATA_FORMATS = ("PNG", "JPEG", "WEBP")
"""The formats ``png-info`` reads metadata from."""
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
DATA_URI = re.compile(r"^data:[^,;]*(?P<parameters>(?:;[^,;]*)*),", re.IGNORECASE)

ActorDep = Annotated[Actor, Depends(current_actor)]


# --- response shapes ----------------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="machine code, e.g. insufficient_credits, unknown_sampler, bad_prompt")
    message: str = Field(description="what to change, the same text Discord shows")


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


COMMON_ERRORS = _errors(401, 413, 422)
GENERATION_ERRORS = _errors(402, 403, 409, 429, 500, 503)


class GenerationResponse(BaseModel):
    """A1111's ``TextToImageResponse``/``ImageToImageResponse``."""

    images: list[str] = Field(description="each image as base64 PNG (with its parameters chunk)")
    parameters: dict[str, Any] = Field(description="the request as received, with its defaults filled in")
    info: str = Field(description="a JSON string: A1111's generation info (prompt, seeds, sampler, infotexts, ...)")


class Options(BaseModel):
    """A1111's options that clients read; the model is the member's (their /settings, else the server's)."""

    model_config = ConfigDict(extra="allow")

    sd_model_checkpoint: str
    sd_checkpoint_hash: str | None = None
    sd_vae: str = "Automatic"
    CLIP_stop_at_last_layers: int = 1
    samples_format: str = "png"
    show_progress_every_n_steps: int = 0
    live_previews_enable: bool = False
    live_previews_image_format: str = "jpeg"


class SdModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float | None = None
    need_inner_model: bool | None = None


class ProgressState(BaseModel):
    skipped: bool = False
    interrupted: bool = False
    stopping_generation: bool = False
    job: str = ""
    job_count: int = 0
    job_timestamp: str = "0"
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    job_id: int | None = Field(default=None, description="imaginebot: the job rendering now (the native API's id)")


class ProgressResponse(BaseModel):
    progress: float = Field(description="0 to 1")
    eta_relative: float = Field(description="seconds left, estimated")
    state: ProgressState
    current_image: str | None = Field(default=None, description="the latest preview, base64 JPEG")
    textinfo: str | None = None


class CancelResponse(BaseModel):
    """A1111 answers ``{}``; the jobs cancelled (and refunded) are named here."""

    cancelled: list[int] = Field(default_factory=list)


class PngInfoRequest(BaseModel):
    image: str = Field(description="the image as base64 or a data: URI")


class PngInfoResponse(BaseModel):
    info: str = Field(description="the parameters text ('' when the image has none)")
    items: dict[str, Any] = Field(description="the image's other text entries")
    parameters: dict[str, Any] = Field(description="the parameters text parsed, as A1111 parses it")


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str | None = Field(default=None, description="not shown (a path on the server)")
    metadata: dict[str, Any] = Field(default_factory=dict)


class Embeddings(BaseModel):
    loaded: dict[str, Any] = Field(default_factory=dict)
    skipped: dict[str, Any] = Field(default_factory=dict)


class CmdFlags(BaseModel):
    model_config = ConfigDict(extra="allow")

    api: bool = True
    listen: bool
    port: int


class NamedItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


router = APIRouter(tags=["A1111-compatible API"], dependencies=[Depends(current_actor)], responses=COMMON_ERRORS)


# --- the app's parts ----------------------------------------------------------------------------------------------


def _service(request: Request) -> ImagineService:
    service: ImagineService = request.app.state.service
    return service


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _feed(request: Request) -> JobFeed:
    feed: JobFeed = request.app.state.feed
    return feed


def _waiting(request: Request) -> dict[int, set[int]]:
    """The jobs of each member's A1111 requests that wait for their results now (what ``/interrupt`` stops)."""
    waiting: dict[int, set[int]] | None = getattr(request.app.state, "a1111_waiting", None)
    if waiting is None:
        waiting = {}
        request.app.state.a1111_waiting = waiting
    return waiting


def _refusal(error: A1111RequestError) -> ApiError:
    return ApiError(422, error.code, error.message)


# --- generation ---------------------------------------------------------------------------------------------------


def decode_image(text: str, limits: UploadLimits, what: str) -> bytes:
    """An image sent as base64 or a ``data:`` URI, refused by its size before it is decoded. Raises UploadError."""
    text = text.strip()
    match = DATA_URI.match(text[:200])
    if match is not None:
        if ";base64" not in match.group("parameters").lower():
            raise UploadError(f"the {what} data URI is not base64; send data:image/png;base64,… or plain base64")
        text = text[match.end() :]
    elif text.startswith(("http://", "https://")):
        raise UploadError(f"the {what} is a URL; this server does not fetch URLs: send the image itself as base64")
    payload = "".join(text.split())
    payload += "=" * (-len(payload) % 4)
    check_byte_size(len(payload) // 4 * 3 - (len(payload) - len(payload.rstrip("="))), limits, what=what)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"the {what} is not valid base64; send the image as base64 or a data: URI") from None


async def _receive(service: ImagineService, text: str, what: str, *, mask: bool) -> ReceivedImage:
    data = await asyncio.to_thread(decode_image, text, service.upload_limits, what)
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
        raise _refusal(error) from None
    model = override or (await service.member.preferences(actor)).model or settings.model
    spec = settings.registry.get(model)
    try:
        translated = translate(
            body,
            images_per_job=settings.images_per_job,
            max_jobs=settings.max_prompts_per_message,
            available_samplers=service.member.samplers(),
            model_samplers=spec.samplers if spec is not None else None,
            model=model,
            model_override=override,
        )
    except A1111RequestError as error:
        raise _refusal(error) from None
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


@contextlib.asynccontextmanager
async def _registered(request: Request, actor: Actor, job_ids: Sequence[int]) -> AsyncIterator[None]:
    waiting = _waiting(request).setdefault(actor.user_id, set())
    waiting.update(job_ids)
    try:
        yield
    finally:
        waiting.difference_update(job_ids)
        if not waiting:
            _waiting(request).pop(actor.user_id, None)


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
    service, settings = _service(request), _settings(request)
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
        ended = await wait_for_jobs(service, _feed(request), actor, job_ids)
    return await _answer(body, ended)


async def _answer(body: Txt2ImgRequest, ended: Sequence[JobFiles]) -> GenerationResponse:
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
    )
    encoded = [base64.b64encode(data).decode("ascii") for data in images] if body.send_images is not False else []
    return GenerationResponse(
        images=encoded, parameters=filled_parameters(body, completed[0].job), info=json.dumps(info)
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


# --- models, options, samplers ------------------------------------------------------------------------------------


async def _options(request: Request, actor: Actor) -> Options:
    settings = _settings(request)
    preferences = await _service(request).member.preferences(actor)
    return Options(
        sd_model_checkpoint=preferences.model or settings.model,
        show_progress_every_n_steps=settings.preview_every,
        live_previews_enable=settings.preview_every > 0,
    )


@router.get("/options", response_model=Options)
async def get_options(request: Request, actor: ActorDep) -> Options:
    """The options A1111 clients read; ``sd_model_checkpoint`` is the model the member's jobs use."""
    return await _options(request, actor)


@router.post("/options", response_model=Options)
async def set_options(request: Request, actor: ActorDep, body: dict[str, Any]) -> Options:
    """``sd_model_checkpoint`` sets the member's model (their /settings); other options are accepted and ignored
    (they are the owner's to set). Answers the options as they are now."""
    title = body.get("sd_model_checkpoint")
    if title is not None:
        service = _service(request)
        try:
            name = resolve_checkpoint(str(title), service.member.models(actor))
        except A1111RequestError as error:
            raise _refusal(error) from None
        await service.member.update_preferences(actor, model=name)
    return await _options(request, actor)


@router.get("/sd-models", response_model=list[SdModelItem])
async def sd_models(request: Request, actor: ActorDep) -> list[SdModelItem]:
    """The models the member may use, as A1111 lists checkpoints (title = our model name)."""
    return [SdModelItem(**sd_model_item(name)) for name in _service(request).member.models(actor)]


@router.get("/samplers", response_model=list[SamplerItem])
async def samplers(request: Request) -> list[SamplerItem]:
    """The engine's samplers by their A1111 names; ``aliases`` holds our names (``--sampler``)."""
    return [SamplerItem(**item) for item in sampler_items(_service(request).member.samplers())]


@router.get("/schedulers", response_model=list[SchedulerItem])
async def schedulers() -> list[SchedulerItem]:
    """The schedule types a ``scheduler`` field may name."""
    return [SchedulerItem(**item) for item in scheduler_items()]


@router.get("/loras", response_model=list[LoraItem])
async def loras(request: Request) -> list[LoraItem]:
    """The LoRAs prompts may use as ``<lora:NAME:weight>``."""
    return [LoraItem(name=name, alias=name) for name in sorted(_settings(request).loras)]


@router.get("/sd-vae", response_model=list[NamedItem])
async def sd_vae() -> list[NamedItem]:
    """None to choose: each model uses its own VAE."""
    return []


@router.get("/upscalers", response_model=list[NamedItem])
async def upscalers() -> list[NamedItem]:
    """None to choose: upscaling is a follow-up of a finished image (the native API's ``upscale`` action)."""
    return []


@router.get("/latent-upscale-modes", response_model=list[NamedItem])
async def latent_upscale_modes() -> list[NamedItem]:
    """None: there is no hires fix here (``enable_hr`` is accepted and ignored)."""
    return []


@router.get("/prompt-styles", response_model=list[NamedItem])
async def prompt_styles() -> list[NamedItem]:
    """No styles here (a ``styles`` field is accepted and ignored)."""
    return []


@router.get("/face-restorers", response_model=list[NamedItem])
async def face_restorers() -> list[NamedItem]:
    """No face restoration here (``restore_faces`` is accepted and ignored)."""
    return []


@router.get("/hypernetworks", response_model=list[NamedItem])
async def hypernetworks() -> list[NamedItem]:
    """No hypernetworks here."""
    return []


@router.get("/embeddings", response_model=Embeddings)
async def embeddings() -> Embeddings:
    """No textual-inversion embeddings here."""
    return Embeddings()


@router.get("/cmd-flags", response_model=CmdFlags)
async def cmd_flags(request: Request) -> CmdFlags:
    """The few of A1111's command-line flags that describe this server (clients probe this route)."""
    web = _settings(request).web
    return CmdFlags(listen=not web.local_only, port=web.port)


# --- progress, interrupt ------------------------------------------------------------------------------------------


@router.get("/progress", response_model=ProgressResponse)
async def progress(
    request: Request,
    actor: ActorDep,
    skip_current_image: Annotated[bool, Query(description="leave the preview out")] = False,
) -> ProgressResponse:
    """The member's job rendering now: its progress, time left and latest preview; 0 when none renders."""
    overview = await _service(request).member.overview(actor)
    running = [place.job for place in overview.jobs if place.job.status is Status.RUNNING]
    latest = _feed(request).latest_of_member(actor.user_id)
    if latest is not None and latest.job_id not in {job.id for job in running}:
        latest = None
    if not overview.jobs:
        return ProgressResponse(progress=0.0, eta_relative=0.0, state=ProgressState(), textinfo=None)
    if not running:
        ahead = min(place.position for place in overview.jobs)
        state = ProgressState(job="queued", job_count=len(overview.jobs))
        return ProgressResponse(
            progress=0.0, eta_relative=0.0, state=state, textinfo=f"waiting in the queue (position {ahead})"
        )
    job = next((job for job in running if latest is not None and job.id == latest.job_id), running[0])
    started = job.started_at or time.time()
    step, total = (latest.step, latest.total) if latest is not None else (0, job.params.steps)
    fraction, eta = progress_and_eta(step, total, max(time.time() - started, 0.0))
    preview = latest.preview if latest is not None and not skip_current_image else None
    state = ProgressState(
        job=job.kind.value,
        job_count=len(overview.jobs),
        job_timestamp=job_timestamp(started),
        sampling_step=step,
        sampling_steps=total,
        job_id=job.id,
    )
    return ProgressResponse(
        progress=fraction,
        eta_relative=eta,
        state=state,
        current_image=base64.b64encode(preview).decode("ascii") if preview else None,
        textinfo=f"job {job.id}: step {step} of {total}",
    )


async def _cancel(request: Request, actor: Actor, *, whole_requests: bool) -> CancelResponse:
    """Cancel (and refund) what ``/interrupt`` or ``/skip`` stops: with ``whole_requests`` every unfinished job of
    the member's waiting A1111 requests, else the one rendering now; without such jobs, the member's job rendering
    now, else their newest. Nothing to stop is no error (as in A1111)."""
    service = _service(request)
    overview = await service.member.overview(actor)
    active = [place.job for place in overview.jobs]
    waiting = _waiting(request).get(actor.user_id, set())
    mine = [job for job in active if job.id in waiting]
    running = [job for job in active if job.status is Status.RUNNING]
    if whole_requests and mine:
        targets = mine
    else:
        targets = (
            [job for job in running if job.id in waiting]
            or running
            or sorted(mine, key=lambda job: job.id)[:1]
            or active[-1:]
        )
    cancelled = []
    for job in targets:
        try:
            await service.member.cancel(actor, job.id)
        except ImagineError as error:  # it ended meanwhile
            log.info("A1111 cancel of job %s: %s", job.id, error)
            continue
        cancelled.append(job.id)
    return CancelResponse(cancelled=cancelled)


@router.post("/interrupt", response_model=CancelResponse)
async def interrupt(request: Request, actor: ActorDep) -> CancelResponse:
    """Stop the member's A1111 request(s) waiting now: every job not finished yet is cancelled and refunded (the
    waiting request answers with what finished, as A1111 does); without one, the job rendering now or the newest."""
    return await _cancel(request, actor, whole_requests=True)


@router.post("/skip", response_model=CancelResponse)
async def skip(request: Request, actor: ActorDep) -> CancelResponse:
    """Cancel (and refund) only the member's job rendering now: a request of several jobs goes on with the next."""
    return await _cancel(request, actor, whole_requests=False)


# --- image metadata -----------------------------------------------------------------------------------------------


def read_metadata(data: bytes, limits: UploadLimits) -> tuple[str, dict[str, str]]:
    """The parameters text of an image (a PNG's text chunk, a JPEG's or WebP's EXIF user comment) and its other
    text entries. Only headers and metadata are read: pixels are decoded only for a PNG whose text follows its
    image data, and only within the upload pixel limit. Raises UploadError."""
    try:
        with Image.open(io.BytesIO(data), formats=METADATA_FORMATS) as image:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise UploadError(
                    f"the image is {width}x{height}, more pixels than this server reads ({limits.max_pixels:,})"
                )
            info = dict(image.info)
            if image.format == "PNG" and "parameters" not in info:
                image.load()  # text chunks after the image data are read with it
                info = dict(image.info)
            exif = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    except UploadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise UploadError(f"the image could not be read ({error}); send a PNG, JPEG or WebP image") from None
    text = info.get("parameters")
    if not isinstance(text, str) and isinstance(exif, bytes):
        text = _user_comment(exif)
    return (text if isinstance(text, str) else ""), text_items(info)


def _user_comment(comment: bytes) -> str | None:
    """An EXIF user comment's text (UNICODE is UTF-16 big-endian, as A1111 writes it; ASCII as is)."""
    if comment.startswith(b"UNICODE\x00"):
        return comment[8:].decode("utf-16-be", errors="replace")
    if comment.startswith(b"ASCII\x00\x00\x00"):
        return comment[8:].decode("ascii", errors="replace")
    return None


@router.post("/png-info", response_model=PngInfoResponse, responses=_errors(422))
async def png_info(request: Request, body: PngInfoRequest) -> PngInfoResponse:
    """The generation parameters an image carries, as text and parsed."""
    limits = _service(request).upload_limits
    data = await asyncio.to_thread(decode_image, body.image, limits, "image")
    text, items = await asyncio.to_thread(read_metadata, data, limits)
    return PngInfoResponse(info=text, items=items, parameters=parse_infotext(text))


@router.post("/interrogate", status_code=501, response_model=ErrorBody, include_in_schema=False)
async def interrogate() -> ErrorBody:
    """Not available: this server cannot describe images yet (left out of the OpenAPI document, which lists what
    works)."""
    raise ApiError(501, "not_implemented", "interrogate is not available on this server: it cannot describe images")
