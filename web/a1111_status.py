"""What a member's A1111 requests are doing and how to stop them: ``GET /progress`` (the job rendering now, its
time left and latest preview), ``POST /interrupt`` (every unfinished job of the waiting requests) and ``POST
/skip`` (only the job rendering now); what they cancel is refunded."""

from __future__ import annotations

import base64
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bot.core import Actor, ImagineError, Status
from web.a1111_common import ActorDep, waiting_jobs
from web.a1111_info import job_timestamp, progress_and_eta
from web.native_common import feed_of, service_of

log = logging.getLogger(__name__)


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


router = APIRouter()


@router.get("/progress", response_model=ProgressResponse)
async def progress(
    request: Request,
    actor: ActorDep,
    skip_current_image: Annotated[bool, Query(description="leave the preview out")] = False,
) -> ProgressResponse:
    """The member's job rendering now: its progress, time left and latest preview; 0 when none renders."""
    overview = await service_of(request).member.overview(actor)
    running = [place.job for place in overview.jobs if place.job.status is Status.RUNNING]
    latest = feed_of(request).latest_of_member(actor.user_id)
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
    service = service_of(request)
    overview = await service.member.overview(actor)
    active = [place.job for place in overview.jobs]
    waiting = waiting_jobs(request).get(actor.user_id, set())
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
