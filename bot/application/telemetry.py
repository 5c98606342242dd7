"""Telemetry: plain counters and fixed-bucket histograms of what the bot does, for a metrics surface to format.

:class:`Telemetry` listens to the job events (:class:`~bot.events.JobEvent`) and is told by the service about
refused requests and by the worker about batches handed to the engine. It keeps everything in memory since this
process started (a restart starts from zero, as Prometheus counters expect) and never imports a metrics library:
:meth:`Telemetry.snapshot` returns frozen dataclasses that a surface (``web/metrics_route.py``) turns into its own
format. The queue's depth and each engine's state are read from the engine pool when the snapshot is taken.

What each number counts:

- jobs by state and kind: one per event (queued, started, completed, failed, cancelled, requeued); a job retried
  after an engine crash is started more than once.
- queue wait: from the request (``created_at``) to its first hand-over to the engine; retries are not counted.
- render time: from the hand-over to the engine (``started``) to the recorded result (``completed``), so a batch
  that waits in the engine behind the one rendering includes that wait.
- credits charged: every queued job's cost; credits refunded: the cost of every job that failed or was cancelled
  (the scheduler refunds exactly that, in the transaction that ends the job).
- errors: failed jobs by :func:`failure_reason` of their message, and refused requests by :func:`refusal_code`.
- engine busy time: wall time with at least one batch in any engine; batch sizes: jobs per batch handed over.
- engines: each engine's state (ready or not), whether it holds a batch now, and its restarts, read from the pool.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from bot.application.telemetry_rules import FAILURE_REASONS, Histogram, failure_reason, refusal_code
from bot.errors import ImagineError
from bot.events import EventBus, EventKind, JobEvent
from bot.jobs import Kind, Lane
from bot.scheduling.reports import QueueSummary, queue_summary

if TYPE_CHECKING:
    from bot.application.service import ImagineService
    from bot.running.engine_pool import EngineStatus

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

QUEUE_WAIT_BOUNDS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Seconds a job waits for the engine (relax jobs may wait an hour)."""
RENDER_BOUNDS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0)
"""Seconds from the hand-over to the engine to the recorded result."""
BATCH_SIZE_BOUNDS = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
"""Jobs per batch handed to the engine (``max_batch`` is at most 16)."""
MAX_TRACKED_JOBS = 10_000
"""Jobs whose hand-over time is kept until they end; beyond this the oldest are forgotten (memory stays bounded)."""

JOB_STATES: dict[EventKind, str] = {
    EventKind.QUEUED: "queued",
    EventKind.STARTED: "started",
    EventKind.COMPLETED: "completed",
    EventKind.FAILED: "failed",
    EventKind.CANCELLED: "cancelled",
    EventKind.REQUEUED: "requeued",
}
"""The ``state`` label of each counted event (progress is not counted)."""


@dataclass(frozen=True)
class JobCount:
    """Events of one state for one kind of job."""

    state: str
    kind: str
    count: int


@dataclass(frozen=True)
class ErrorCount:
    """Failed jobs (``stage`` "render") or refused requests (``stage`` "request") for one reason."""

    stage: str
    reason: str
    count: int


@dataclass(frozen=True)
class LaneDepth:
    """Jobs waiting in one lane."""

    lane: str
    queued: int


@dataclass(frozen=True)
class TelemetrySnapshot:
    """Everything :class:`Telemetry` knows at one moment; counters count since this process started."""

    uptime_s: float
    jobs: tuple[JobCount, ...]
    errors: tuple[ErrorCount, ...]
    queue_wait: Histogram
    render: Histogram
    batch_size: Histogram
    credits_charged: int
    credits_refunded: int
    engine_busy_s: float
    engine_busy_ratio: float
    """Busy time over uptime, 0 to 1 (a lifetime average; a rate of ``engine_busy_s`` gives a recent one)."""
    engine_restarts: int
    """Restarts of every engine together."""
    engine_ready: bool
    """At least one engine has its model loaded (jobs can render)."""
    queue_readable: bool
    """The queue could be read from the database; when False the queue fields below are empty or zero."""
    queue_depth: tuple[LaneDepth, ...] = ()
    running: int = 0
    paused: bool = False
    engines: tuple[EngineStatus, ...] = ()
    """Each engine of the pool: name, device, state, models, busy, restarts."""

    def jobs_total(self, state: str, kind: str | None = None) -> int:
        """Events of ``state``, for one job kind or all."""
        return sum(item.count for item in self.jobs if item.state == state and kind in (None, item.kind))

    def errors_total(self, reason: str, stage: str | None = None) -> int:
        """Errors of ``reason``, at one stage or both."""
        return sum(item.count for item in self.errors if item.reason == reason and stage in (None, item.stage))


class EngineStates(Protocol):
    """What telemetry reads of the engines (an :class:`~bot.running.engine_pool.EnginePool`)."""

    def status(self) -> list[EngineStatus]: ...


@dataclass
class _Counts:
    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    credits_charged: int = 0
    credits_refunded: int = 0


class Telemetry:
    """Counts jobs, credits, errors and engine use as they happen; :meth:`snapshot` reads them all at once.

    ``queue`` reads the queue's depth and ``engines`` each engine's state when a snapshot is taken (none: left
    empty).
    ``clock`` measures durations (monotonic), ``wall`` is the clock of the jobs' timestamps."""

    def __init__(
        self,
        *,
        queue: Callable[[], Awaitable[QueueSummary]] | None = None,
        engines: EngineStates | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        tracked_jobs: int = MAX_TRACKED_JOBS,
    ) -> None:
        self._queue = queue
        self._engines = engines
        self._clock = clock
        self._wall = wall
        self._tracked_jobs = tracked_jobs
        self._started_at = clock()
        self._counts = _Counts()
        for state in JOB_STATES.values():  # every series exists from the start, so a rate over it works at once
            for kind in Kind:
                self._counts.jobs[(state, kind.value)] = 0
        for reason in FAILURE_REASONS:
            self._counts.errors[("render", reason)] = 0
        self._queue_wait = Histogram(QUEUE_WAIT_BOUNDS)
        self._render = Histogram(RENDER_BOUNDS)
        self._batch_size = Histogram(BATCH_SIZE_BOUNDS)
        self._handed_over: dict[int, float] = {}
        """Job id → clock time of its latest hand-over to the engine, until it ends (oldest first)."""
        self._in_engine = 0
        self._busy_since: float | None = None
        self._busy_s = 0.0

    @classmethod
    def for_service(cls, service: ImagineService) -> Telemetry:
        """Telemetry of ``service``: subscribed to its events, reading its queue and its engine pool."""

        async def queue() -> QueueSummary:
            return await queue_summary(service.store, paused=service.scheduler.paused)

        telemetry = cls(queue=queue, engines=service.engines)
        telemetry.attach(service.events)
        return telemetry

    def attach(self, events: EventBus) -> Callable[[], None]:
        """Count the events of ``events`` from now on; returns the function that stops it."""
        return events.subscribe(self.record)

    # --- what happens ----------------------------------------------------------------------------------------

    def record(self, event: JobEvent) -> None:
        """Count one job event."""
        state = JOB_STATES.get(event.kind)
        if state is None:  # progress
            return
        job = event.job
        counts = self._counts
        counts.jobs[(state, job.kind.value)] += 1
        if event.kind is EventKind.QUEUED:
            counts.credits_charged += max(job.cost, 0)
        elif event.kind is EventKind.STARTED:
            if job.attempts <= 1:
                started = job.started_at if job.started_at is not None else self._wall()
                self._queue_wait = self._queue_wait.observe(max(0.0, started - job.created_at))
            self._hand_over(job.id)
        elif event.kind is EventKind.COMPLETED:
            handed_over = self._handed_over.pop(job.id, None)
            if handed_over is not None:
                self._render = self._render.observe(max(0.0, self._clock() - handed_over))
        else:  # failed, cancelled, requeued
            self._handed_over.pop(job.id, None)
            if event.kind is not EventKind.REQUEUED:
                counts.credits_refunded += max(job.cost, 0)
            if event.kind is EventKind.FAILED:
                counts.errors[("render", failure_reason(event.message or job.error or ""))] += 1

    def _hand_over(self, job_id: int) -> None:
        self._handed_over.pop(job_id, None)
        while len(self._handed_over) >= self._tracked_jobs:
            del self._handed_over[next(iter(self._handed_over))]
        self._handed_over[job_id] = self._clock()

    def refused(self, error: ImagineError) -> None:
        """Count a request refused before it was queued (by :func:`refusal_code`)."""
        self._counts.errors[("request", refusal_code(error))] += 1

    def batch_sent(self, size: int) -> None:
        """A batch of ``size`` jobs was handed to the engine."""
        self._batch_size = self._batch_size.observe(size)
        if self._in_engine == 0:
            self._busy_since = self._clock()
        self._in_engine += 1

    def batch_ended(self) -> None:
        """The engine gave back a batch's results (or failed it)."""
        if self._in_engine == 0:
            log.debug("a batch ended that was not counted as sent")
            return
        self._in_engine -= 1
        if self._in_engine == 0 and self._busy_since is not None:
            self._busy_s += self._clock() - self._busy_since
            self._busy_since = None

    # --- reading ---------------------------------------------------------------------------------------------

    @property
    def tracked_jobs(self) -> int:
        """Jobs handed to the engine whose end is still awaited."""
        return len(self._handed_over)

    async def snapshot(self) -> TelemetrySnapshot:
        """Every counter and histogram, each engine's state, and the queue's depth read from the database now."""
        summary: QueueSummary | None = None
        readable = self._queue is None
        if self._queue is not None:
            try:
                summary = await self._queue()
                readable = True
            except (sqlite3.Error, ValueError) as error:  # a closed or busy database: the rest is still worth reading
                log.warning("metrics: the queue could not be read: %s", error)
        now = self._clock()
        uptime = max(0.0, now - self._started_at)
        busy = self._busy_s + (now - self._busy_since if self._busy_since is not None else 0.0)
        counts = self._counts
        engines = tuple(self._engines.status()) if self._engines is not None else ()
        return TelemetrySnapshot(
            uptime_s=uptime,
            jobs=tuple(JobCount(state, kind, count) for (state, kind), count in sorted(counts.jobs.items())),
            errors=tuple(ErrorCount(stage, reason, count) for (stage, reason), count in sorted(counts.errors.items())),
            queue_wait=self._queue_wait,
            render=self._render,
            batch_size=self._batch_size,
            credits_charged=counts.credits_charged,
            credits_refunded=counts.credits_refunded,
            engine_busy_s=busy,
            engine_busy_ratio=min(1.0, busy / uptime) if uptime > 0 else 0.0,
            engine_restarts=sum(engine.restarts for engine in engines),
            engine_ready=any(engine.state == "ready" for engine in engines),
            queue_readable=readable,
            queue_depth=_depth(summary),
            running=0 if summary is None else len(summary.running),
            paused=False if summary is None else summary.paused,
            engines=engines,
        )


def _depth(summary: QueueSummary | None) -> tuple[LaneDepth, ...]:
    """Queued jobs of every lane, in order of service (none when the queue could not be read)."""
    if summary is None:
        return ()
    return tuple(LaneDepth(lane.value, summary.queued.get(lane, 0)) for lane in Lane)


class _HasTelemetry(Protocol):
    telemetry: Telemetry


S = TypeVar("S", bound=_HasTelemetry)


def counting_refusals(
    method: Callable[Concatenate[S, P], Awaitable[R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Count every ImagineError ``method`` raises as a refused request in its owner's ``telemetry``, then re-raise
    it (for the service's ``prepare``, ``prepare_follow_up`` and ``submit``)."""

    @functools.wraps(method)
    async def counted(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except ImagineError as error:
            self.telemetry.refused(error)
            raise

    return counted


class ServicePart:
    """A group of the application core's actions reached through the service (``service.describe``,
    ``service.image_prompts``): it holds the service, and its refusals count in the service's telemetry."""

    def __init__(self, service: ImagineService) -> None:
        self._service = service

    @property
    def telemetry(self) -> Telemetry:
        """The service's telemetry (refusals are counted there)."""
        return self._service.telemetry
