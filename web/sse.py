"""A job's events as Server-Sent Events (``GET /api/v1/jobs/{id}/events``).

The stream starts watching the job's events (:meth:`web.feed.JobFeed.watch`) before it reads the job's state, so
nothing that happens in between is lost: it says where the job stands (``queued`` with its place, or ``started``
and the newest ``progress``), then passes on what happens (``position`` when its place changes, ``started``,
``progress`` with the preview as a JPEG data URI, ``requeued``) until the end (``completed``, ``failed`` or
``cancelled``), after which it closes. A job that already ended gets its end at once. Each event has an ``id:``;
the stream opens with ``retry:``; a ``: keep-alive`` comment goes out after :data:`KEEPALIVE_S` of silence.

A watcher costs its buffer and one sleeping task: it wakes for its job's events, every :data:`POSITION_POLL_S`
while its job waits (to see its place change), and for the keep-alive, and ends as soon as the client is gone.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from bot.core import Actor, EventKind, ImageResult, ImagineError, ImagineService, Job, JobEvent, Status
from web.feed import JobFeed, Watcher
from web.job_views import job_out

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
"""Silence after which a ``: keep-alive`` comment is sent (proxies close idle connections)."""
POSITION_POLL_S = 2.0
"""How often a queued job's place is read while nothing else happens."""
PLACES_MAX_AGE_S = 1.0
"""How long one read of a member's queue places serves all their streams."""
RETRY_MS = 3000
"""How long a browser's EventSource waits before it reconnects."""
KEEP_ALIVE = ": keep-alive\n\n"


class Phase(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"


def sse_message(event: str, data: dict[str, Any], event_id: int) -> str:
    """One event in the wire format (the JSON on one ``data:`` line)."""
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def preview_uri(preview: bytes | None) -> str | None:
    return "data:image/jpeg;base64," + base64.b64encode(preview).decode("ascii") if preview else None


Place = tuple[int, float | None]
"""A job's place in the queue (1 = next; 0 once it left the queue) and its ETA."""


class Places:
    """Queue places read for the streams of one app: one member's places are read at most once per
    :data:`PLACES_MAX_AGE_S`, however many of their streams ask (hundreds of watchers cost a few reads)."""

    def __init__(self, service: ImagineService) -> None:
        self._service = service
        self._reads: dict[int, tuple[float, asyncio.Future[dict[int, Place]]]] = {}

    async def of(self, actor: Actor, job_id: int) -> Place:
        now = time.monotonic()
        entry = self._reads.get(actor.user_id)
        if entry is None or now - entry[0] >= PLACES_MAX_AGE_S:
            for user_id, (read_at, _read) in list(self._reads.items()):
                if now - read_at >= PLACES_MAX_AGE_S:
                    del self._reads[user_id]
            entry = (now, asyncio.ensure_future(self._read(actor)))
            self._reads[actor.user_id] = entry
        places = await asyncio.shield(entry[1])
        return places.get(job_id, (0, None))

    async def _read(self, actor: Actor) -> dict[int, Place]:
        overview = await self._service.member.overview(actor)
        return {place.job.id: (place.position, place.eta_s) for place in overview.jobs}


def places_of(request: Request) -> Places:
    """The app's :class:`Places` (made on first use)."""
    state = request.app.state
    places: Places | None = getattr(state, "native_places", None)
    if places is None:
        places = state.native_places = Places(request.app.state.service)
    return places


class JobStream:
    """The events of one job for one client (see the module's note)."""

    def __init__(self, request: Request, service: ImagineService, feed: JobFeed, actor: Actor, job_id: int) -> None:
        self.request = request
        self.service = service
        self.feed = feed
        self.actor = actor
        self.job_id = job_id
        self._sent = 0
        self._last_sent = time.monotonic()
        self._last_poll = time.monotonic()
        self._place: Place = (0, None)
        self._preview: bytes | None = None

    async def events(self) -> AsyncIterator[str]:
        """The whole stream, ending after the job's end or when the client goes."""
        async with self.feed.watch(self.job_id) as watcher:
            try:
                files = await self.service.member.job(self.actor, self.job_id)  # after watching: nothing falls between
            except ImagineError:  # checked before the stream began; it cannot vanish, but never raise mid-stream
                return
            yield f"retry: {RETRY_MS}\n\n"
            job = files.job
            if job.status.terminal:
                yield self._end(job.status.value, job, files.images, job.error or "")
                return
            if job.status is Status.QUEUED:
                phase = Phase.QUEUED
                self._place = await self._read_place()
                yield self._message("queued", {"job": self._job(job)})
            else:
                phase = Phase.RUNNING
                yield self._message("started", {"job": self._job(job)})
                latest = self.feed.latest(self.job_id)
                if latest is not None:
                    yield self._progress(latest.step, latest.total, latest.preview)
            async for chunk in self._follow(watcher, phase):
                yield chunk

    async def _follow(self, watcher: Watcher, phase: Phase) -> AsyncIterator[str]:
        while True:
            if await self.request.is_disconnected():
                return
            event = await watcher.next(self._wait_s(phase))
            if event is None:
                if phase is Phase.QUEUED and time.monotonic() - self._last_poll >= POSITION_POLL_S:
                    place = await self._read_place()
                    if place != self._place:
                        self._place = place
                        yield self._message("position", {"position": place[0], "eta_s": place[1]})
                if time.monotonic() - self._last_sent >= KEEPALIVE_S:
                    self._last_sent = time.monotonic()
                    yield KEEP_ALIVE
                continue
            kind = event.kind
            if kind in (EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED):
                yield self._ended(event)
                return
            if kind is EventKind.STARTED and phase is Phase.QUEUED:
                phase = Phase.RUNNING
                yield self._message("started", {"job": self._job(event.job)})
            elif kind is EventKind.PROGRESS:
                phase = Phase.RUNNING
                yield self._progress(event.step, event.total, event.preview)
            elif kind is EventKind.REQUEUED:
                phase = Phase.QUEUED
                self._place = (0, None)
                yield self._message("requeued", {"message": event.message})
            # QUEUED, and a STARTED already told from the job's state: nothing new

    def _wait_s(self, phase: Phase) -> float:
        now = time.monotonic()
        wait = KEEPALIVE_S - (now - self._last_sent)
        if phase is Phase.QUEUED:
            wait = min(wait, POSITION_POLL_S - (now - self._last_poll))
        return max(0.0, wait)

    async def _read_place(self) -> Place:
        self._last_poll = time.monotonic()
        return await places_of(self.request).of(self.actor, self.job_id)

    def _job(self, job: Job, images: tuple[ImageResult, ...] = ()) -> dict[str, Any]:
        position, eta_s = self._place if job.status is Status.QUEUED else (0, None)
        return job_out(job, images, position=position, eta_s=eta_s).model_dump(mode="json")

    def _ended(self, event: JobEvent) -> str:
        """The end, from the event: it carries the job as the transaction that ended it stored it (and a completed
        job's images), so no watcher reads the database again."""
        return self._end(event.kind.value, event.job, event.images, event.message or event.job.error or "")

    def _end(self, kind: str, job: Job, images: tuple[ImageResult, ...], message: str) -> str:
        """``completed`` with the job; ``failed`` or ``cancelled`` with the job and why."""
        if kind == EventKind.COMPLETED:
            return self._message(kind, {"job": self._job(job, images)})
        return self._message(kind, {"job": self._job(job, images), "message": message})

    def _progress(self, step: int, total: int, preview: bytes | None) -> str:
        """A progress event; one without a preview carries the newest preview not sent yet (a lagging watcher's
        buffer keeps only the newest progress, which may be a step without one)."""
        if preview is None:
            latest = self.feed.latest(self.job_id)
            if latest is not None and latest.preview is not None and latest.preview is not self._preview:
                preview = latest.preview
        if preview is not None:
            self._preview = preview
        return self._message("progress", {"step": step, "total": total, "preview": preview_uri(preview)})

    def _message(self, event: str, data: dict[str, Any]) -> str:
        self._sent += 1
        self._last_sent = time.monotonic()
        return sse_message(event, data, self._sent)
