"""Background upkeep on APScheduler 3.x: allowance top-ups, the lease-expiry sweep, upload expiry, the heartbeat.

The scheduler must be started inside the running event loop (the bot's ``setup_hook``). Jobs have stable ids and
``replace_existing=True``, and each one is idempotent (a refill compares stored last-refill times with the current
period; a sweep looks at stored lease times; expiry looks at file times and the jobs still queued or running), so
a restart, a missed run or a repeated run never grants twice nor deletes what a job still needs. The heartbeat
(:mod:`bot.running.health`) replaces one small file with the worker's current state, so repeating it changes nothing
else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.events import EventBus, EventKind, JobEvent
from bot.requests.upload_store import expire_uploads
from bot.running.health import HEARTBEAT_EVERY_S, EngineState, Heartbeat, heartbeat_file, write_heartbeat
from bot.scheduling.ledger import Ledger
from bot.scheduling.scheduler import Scheduler

if TYPE_CHECKING:
    from bot.running.engine_pool import EnginePool
    from bot.running.engine_supervisor import EngineSupervisor

log = logging.getLogger(__name__)
T = TypeVar("T")

REFILL_JOB_ID = "imaginebot:refill-allowances"
LEASE_SWEEP_JOB_ID = "imaginebot:expire-leases"
UPLOAD_EXPIRY_JOB_ID = "imaginebot:expire-uploads"
HEARTBEAT_JOB_ID = "imaginebot:heartbeat"
UPLOAD_EXPIRY_EVERY_S = 3600.0
"""How often expired uploads are looked for: an upload lives at most its retention plus this."""
LOGGED_NAMES = 20


class Maintenance:
    """The periodic jobs; :meth:`start` inside the running loop, :meth:`stop` on shutdown.

    Uploads live in ``uploads_dir`` (default ``data_dir/uploads``) and are kept ``upload_retention_s`` after their
    last use (default ``upload_retention_hours`` of the scheduler's settings). With ``engines``, the state of their
    workers is written to ``heartbeat_path`` (default ``data_dir/heartbeat.json``) at start and every 30 s.
    """

    def __init__(
        self,
        ledger: Ledger,
        scheduler: Scheduler,
        *,
        events: EventBus | None = None,
        wake: Callable[[], None] | None = None,
        uploads_dir: Path | None = None,
        upload_retention_s: float | None = None,
        engines: EnginePool | None = None,
        heartbeat_path: Path | None = None,
    ) -> None:
        self.ledger = ledger
        self.scheduler = scheduler
        self.events = events
        self._wake = wake
        settings = scheduler.settings
        self.uploads_dir = uploads_dir if uploads_dir is not None else settings.data_dir / "uploads"
        self.upload_retention_s = (
            upload_retention_s if upload_retention_s is not None else settings.upload_retention_hours * 3600.0
        )
        self.engines = engines
        self.heartbeat_path = heartbeat_path if heartbeat_path is not None else heartbeat_file(settings.data_dir)
        self.apscheduler: AsyncIOScheduler | None = None

    async def refill(self) -> int:
        """Top up every member whose allowance is due; safe to run any number of times."""
        try:
            return await self.ledger.refill_all()
        except Exception:
            log.exception("the allowance refill failed; it is retried on the next run")
            return 0

    async def sweep_leases(self) -> list[int]:
        """Take back running jobs whose lease expired (requeue, or fail and refund after max attempts)."""
        try:
            handled = await self.scheduler.expire_leases()
        except Exception:
            log.exception("the lease sweep failed; it is retried on the next run")
            return []
        if handled:
            log.warning("took back %d job(s) whose lease expired: %s", len(handled), handled)
            for job_id in handled:
                job = await self.scheduler.get(job_id)
                if self.events is not None:
                    kind = EventKind.REQUEUED if not job.status.terminal else EventKind.FAILED
                    await self.events.emit(JobEvent(kind, job, message=job.error or ""))
            if self._wake is not None:
                self._wake()
        return handled

    async def expire_uploads(self, *, now: float | None = None) -> list[Path]:
        """Delete uploads unused for the retention period and stale staged files, keeping every input of a queued
        or running job; returns what was deleted. Safe to run any number of times."""
        try:
            keep = await self.scheduler.active_inputs()
            removed = await asyncio.to_thread(
                expire_uploads,
                self.uploads_dir,
                keep=keep,
                older_than_s=self.upload_retention_s,
                now=time.time() if now is None else now,
            )
        except Exception:
            log.exception("the upload expiry failed; it is retried on the next run")
            return []
        if removed:
            names = ", ".join(path.name for path in removed[:LOGGED_NAMES])
            more = f" and {len(removed) - LOGGED_NAMES} more" if len(removed) > LOGGED_NAMES else ""
            log.info("deleted %d expired upload(s) from %s: %s%s", len(removed), self.uploads_dir, names, more)
        return removed

    def heartbeat(self, *, now: float | None = None) -> Heartbeat:
        """The workers' state now (requires ``engines``)."""
        if self.engines is None:
            raise RuntimeError("a heartbeat needs the engines")
        engine, detail = pool_state(self.engines.engines)
        finished = [worker.last_finished_at for worker in self.engines.workers if worker.last_finished_at is not None]
        return Heartbeat(
            written_at=time.time() if now is None else now,
            pid=os.getpid(),
            worker_alive=self.engines.alive,
            engine=engine,
            engine_detail=detail,
            queued=len(self.scheduler.index),
            running=len(self.scheduler.running),
            last_finished_at=max(finished) if finished else None,
        )

    async def write_heartbeat(self, *, now: float | None = None) -> Heartbeat | None:
        """Replace the heartbeat file with the state now; None (and a log line) when it cannot be written."""
        beat = self.heartbeat(now=now)
        try:
            await asyncio.to_thread(write_heartbeat, self.heartbeat_path, beat)
        except OSError as error:
            log.warning("could not write the heartbeat %s: %s", self.heartbeat_path, error.strerror or error)
            return None
        return beat

    def start(self) -> AsyncIOScheduler:
        """Schedule the jobs (stable ids, replacing any earlier ones) and start APScheduler in this loop."""
        policy = self.scheduler.policy
        scheduler = AsyncIOScheduler(timezone="UTC")
        jobs = (
            (self.refill, policy.refill_check_s, REFILL_JOB_ID, "top up tier allowances"),
            (self.sweep_leases, policy.lease_sweep_s, LEASE_SWEEP_JOB_ID, "take back jobs whose lease expired"),
            (self.expire_uploads, UPLOAD_EXPIRY_EVERY_S, UPLOAD_EXPIRY_JOB_ID, "delete expired uploads"),
        )
        for function, every_s, job_id, name in jobs:
            scheduler.add_job(
                stops_quietly(function),
                "interval",
                seconds=every_s,
                id=job_id,
                name=name,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        if self.engines is not None:  # the first beat at once: health need not wait 30 s after start-up
            scheduler.add_job(
                stops_quietly(self.write_heartbeat),
                "interval",
                seconds=HEARTBEAT_EVERY_S,
                id=HEARTBEAT_JOB_ID,
                name="write the heartbeat",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
                next_run_time=datetime.now(UTC),
            )
        scheduler.start()
        self.apscheduler = scheduler
        return scheduler

    def stop(self) -> None:
        if self.apscheduler is not None and self.apscheduler.running:
            self.apscheduler.shutdown(wait=False)
        self.apscheduler = None


def stops_quietly(function: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T | None]]:
    """``function`` as an APScheduler job that ends quietly when shutdown cancels it mid-run.

    APScheduler logs any exception a coroutine job raises, cancellation included, with a traceback; a job cut short
    because the bot is stopping is not an error (each job is idempotent and runs again after the restart).
    """

    async def job() -> T | None:
        try:
            return await function()
        except asyncio.CancelledError:
            log.debug("%s stopped with the bot", getattr(function, "__name__", function))
            return None

    job.__name__ = getattr(function, "__name__", "job")
    return job


def engine_state(engine: EngineSupervisor) -> tuple[EngineState, str]:
    """What the engine does now, and its model (ready, loading) or why it cannot start (failing)."""
    ready = engine.ready
    if ready is not None:
        return EngineState.READY, f"{ready.model_name} on {ready.device}"
    if engine.fatal is not None:
        return EngineState.FAILING, engine.fatal
    if engine.alive:
        return EngineState.LOADING, engine.config.model_name
    return EngineState.STOPPED, ""


def pool_state(engines: list[EngineSupervisor]) -> tuple[EngineState, str]:
    """The best state any engine is in (ready when one renders), and each engine's detail when there are several:
    ``2 of 3 ready: tiny on cuda; tiny on cuda; loading sdxl``."""
    states = [engine_state(engine) for engine in engines]
    if len(states) == 1:
        return states[0]
    order = (EngineState.READY, EngineState.LOADING, EngineState.FAILING, EngineState.STOPPED)
    best = min((state for state, _ in states), key=order.index)
    ready = sum(1 for state, _ in states if state is EngineState.READY)
    details = "; ".join(
        detail if state is EngineState.READY else f"{state.value} {detail}".strip() for state, detail in states
    )
    return best, f"{ready} of {len(states)} ready: {details}"
