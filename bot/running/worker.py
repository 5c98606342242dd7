"""The worker: take the next job from the queue, have the engine render it, record and announce the result."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Coroutine
from pathlib import Path
from typing import Any

from bot.errors import EngineCrashedError, EngineStartError, JobNotFoundError
from bot.events import EventBus, EventKind, JobEvent
from bot.jobs import ImageResult, Job, engine_task
from bot.running.engine_supervisor import EngineSupervisor
from bot.running.waiting import ExternalWait, passthrough
from bot.scheduling.fairness import should_requeue
from bot.scheduling.scheduler import Scheduler
from engine.protocol import Heartbeat, Progress, RenderTask, TaskDone

log = logging.getLogger(__name__)

ENGINE_RETRY_FIRST_S = 10.0
ENGINE_RETRY_MAX_S = 300.0
HEARTBEAT_MAX_S = 5.0
"""The engine says at least this often that it still works on a job; a quarter of the lease when that is less."""


def heartbeat_interval(lease_s: float) -> float:
    """How often the engine reports on a running job: four times per lease, at least every few seconds."""
    return min(HEARTBEAT_MAX_S, lease_s / 4)


def render_task_for(job: Job, images_dir: Path) -> RenderTask:
    """The engine task of ``job``, writing its files under ``images_dir/<job id>``."""
    return engine_task(job.kind, job.params, job_id=job.id, output_dir=str(images_dir / str(job.id)))


class Worker:
    """Runs jobs one at a time on one engine. ``only`` restricts it to some job ids (the CLI's own jobs)."""

    def __init__(
        self,
        scheduler: Scheduler,
        engine: EngineSupervisor,
        events: EventBus,
        images_dir: Path,
        *,
        external_wait: ExternalWait = passthrough,
        only: Collection[int] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.engine = engine
        self.events = events
        self.images_dir = images_dir
        self.external_wait = external_wait
        self.only = only
        self._wake = asyncio.Event()
        self._stopping = False
        self._renewals: set[asyncio.Task[Any]] = set()
        """Background writes and announcements started from progress callbacks (kept so they are not lost)."""
        self.alive = False
        """The serving loop (:meth:`run`) is running: false before it starts and once it ended for any reason."""
        self.last_finished_at: float | None = None
        """When this worker last completed or failed a job (Unix seconds); None before the first."""

    def wake(self) -> None:
        """Tell the worker a job was queued."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Serve the queue until stopped."""
        self.alive = True
        try:
            while not self._stopping:
                if self.engine.ready is None:  # at start-up, and while a crashed engine restarts: jobs stay queued
                    await self._wait_for_engine()
                    continue
                self._wake.clear()
                jobs = await self._next_jobs()
                if not jobs:
                    await self.external_wait(self._wake.wait(), reason="waiting for queued jobs")
                    continue
                await self.run_jobs(jobs)
        finally:
            self.alive = False

    async def _wait_for_engine(self) -> None:
        """Wait until the engine is ready; if it cannot start, say why and try again later (jobs stay queued)."""
        delay = ENGINE_RETRY_FIRST_S
        while not self._stopping:
            try:
                await self.external_wait(self.engine.wait_ready(), reason="engine loading its model")
                return
            except EngineStartError as error:
                if self.engine.fatal is None:
                    # It died while loading (killed, crashed): the supervisor's own backoff paces the restart.
                    log.warning("the engine died while loading; starting it again: %s", error)
                    continue
                log.error("the engine cannot start (queued jobs wait; next try in %g s): %s", delay, error)
                await self.external_wait(asyncio.sleep(delay), reason="waiting to restart the engine")
                delay = min(delay * 2, ENGINE_RETRY_MAX_S)

    async def run_until_idle(self) -> None:
        """Run jobs until none are queued (a "burst" for the CLI and tests)."""
        await self.external_wait(self.engine.wait_ready(), reason="engine loading its model")
        while jobs := await self._next_jobs():
            await self.run_jobs(jobs)

    async def _next_jobs(self) -> list[Job]:
        """Up to ``scheduler.max_batch`` compatible jobs (one at a time for the CLI's own jobs)."""
        if self.only is None:
            return await self.scheduler.dispatch()
        job = await self.scheduler.claim_next(self.only)
        return [job] if job is not None else []

    async def run_jobs(self, jobs: list[Job]) -> None:
        """Render a batch of compatible jobs in one engine call; each job ends on its own."""
        for job in jobs:
            await self.events.emit(JobEvent(EventKind.STARTED, job))
        tasks = [render_task_for(job, self.images_dir) for job in jobs]
        by_id = {job.id: job for job in jobs}
        loop = asyncio.get_running_loop()
        heartbeat_s = heartbeat_interval(self.scheduler.policy.lease_s)
        renew_every_s = heartbeat_s / 2
        last_renewal = {job.id: loop.time() for job in jobs}

        def keep_alive() -> None:
            """The engine works on the batch (any phase of any of its jobs): renew every job's lease, at most every
            ``renew_every_s``. A job whose result is in waits for the rest of the batch before it is recorded."""
            now = loop.time()
            for job_id, renewed_at in last_renewal.items():
                if now - renewed_at >= renew_every_s:
                    last_renewal[job_id] = now
                    self._in_background(loop, self.scheduler.renew(job_id))

        def on_heartbeat(heartbeat: Heartbeat) -> None:
            if heartbeat.job_id in by_id:
                keep_alive()

        def on_progress(progress: Progress) -> None:
            job = by_id.get(progress.job_id)
            if job is None:
                return
            event = JobEvent(
                EventKind.PROGRESS, job, step=progress.step, total=progress.total, preview_png=progress.preview_png
            )
            self._in_background(loop, self.events.emit(event))
            keep_alive()

        rendering = self.engine.render_batch(tasks, on_progress, on_heartbeat=on_heartbeat, heartbeat_s=heartbeat_s)
        try:
            results = await self.external_wait(rendering, reason="engine rendering")
        except EngineCrashedError as error:
            for job in jobs:
                await self._after_crash(job, str(error))
            return
        except EngineStartError as error:
            for job in jobs:
                if self.engine.fatal is None:  # it died while loading: like a crash, the job is tried again
                    await self._after_crash(job, str(error))
                else:  # the model cannot load: say so and refund
                    await self._fail(job, f"the engine could not start: {error}", str(error))
            return
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, TaskDone):
                await self._record(job, result)
            else:
                await self._fail(job, result.message, result.message)

    def _in_background(self, loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, object]) -> None:
        """Run a write or an announcement started from an engine callback, keeping it until it ends."""
        task = loop.create_task(work)
        self._renewals.add(task)
        task.add_done_callback(self._renewals.discard)

    async def _fail(self, job: Job, error: str, message: str) -> None:
        """Fail (and refund) the job, unless it already ended (cancelled, or taken back by a lease sweep)."""
        try:
            failed = await self.scheduler.fail(job.id, error)
        except JobNotFoundError:
            log.info("job %s ended before its failure was reported (%s)", job.id, error)
            return
        self.last_finished_at = time.time()
        await self.events.emit(JobEvent(EventKind.FAILED, failed, message=message))

    async def _after_crash(self, job: Job, reason: str) -> None:
        if should_requeue(job.attempts, self.scheduler.policy.max_attempts):
            log.warning("job %s interrupted (%s); retrying (attempt %d)", job.id, reason, job.attempts)
            try:
                requeued = await self.scheduler.requeue(job.id, reason)
            except JobNotFoundError:
                return
            await self.events.emit(JobEvent(EventKind.REQUEUED, requeued, message=reason))
            self.wake()
        else:
            message = f"the engine crashed {job.attempts} times on this job; giving up ({reason})"
            await self._fail(job, message, message)

    async def _record(self, job: Job, done: TaskDone) -> None:
        """Record the files the engine wrote (its images and their grid) as the job's result, and announce it."""
        images = tuple(
            ImageResult(job.id, index, path, seed, done.width, done.height)
            for index, (path, seed) in enumerate(zip(done.paths, done.seeds, strict=True))
        )
        try:
            completed = await self.scheduler.complete(job.id, images, done.grid_path)
        except JobNotFoundError:
            log.warning("job %s finished after it was cancelled; its images are discarded", job.id)
            return
        self.last_finished_at = time.time()
        await self.events.emit(JobEvent(EventKind.COMPLETED, completed, images=images))
