"""The worker: take the next job from the queue, have the engine render it, record and announce the result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot.errors import EngineCrashedError, EngineStartError, JobNotFoundError
from bot.events import EventBus, EventKind, JobEvent
from bot.image_safety import (
    SafetyVerdictError,
    delete_job_files,
    job_verdict,
    record_safety,
    with_safety_check,
    withheld_message,
    withholds,
)
from bot.jobs import ImageResult, Job, engine_task
from bot.running.engine_supervisor import EngineSupervisor, SentBatch
from bot.running.waiting import ExternalWait, passthrough
from bot.scheduling.affinity import Affinity
from bot.scheduling.fairness import should_requeue
from bot.scheduling.scheduler import Scheduler
from bot.storage.describe_suggestions import save_suggestions
from engine.protocol import Heartbeat, Progress, RenderTask, TaskDone, TaskFailed

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


class Peers(Protocol):
    """The other workers of an engine pool, as one worker sees them (:class:`~bot.running.engine_pool.EnginePool`)."""

    def affinity_for(self, worker: Worker) -> Affinity | None:
        """What ``worker``'s engine holds and what other free engines hold, for the scheduler's pick."""
        ...

    def other_is_free(self, worker: Worker) -> bool:
        """Another engine is ready with nothing to do: a job should go there rather than wait behind a batch."""
        ...

    def wake_all(self) -> None:
        """Wake every worker (a job was queued, given back, or left for another engine)."""
        ...


class Alone:
    """The :class:`Peers` of a worker with no others: nothing is free elsewhere, nobody else to wake."""

    def affinity_for(self, worker: Worker) -> Affinity | None:
        return None

    def other_is_free(self, worker: Worker) -> bool:
        return False

    def wake_all(self) -> None:
        return None


class BatchRecorder(Protocol):
    """Told when a batch is handed to the engine and when its results are in (engine busy time, batch sizes)."""

    def batch_sent(self, size: int) -> None: ...

    def batch_ended(self) -> None: ...


@dataclass(frozen=True)
class _InFlight:
    """A batch handed to the engine (``sent``), or the error that kept it from being handed over."""

    jobs: list[Job]
    sent: SentBatch | None
    error: BaseException | None

    def done(self) -> bool:
        """Nothing more to wait for: every reply is in, or it was never sent."""
        return self.sent is None or self.sent.done()

    def time_left(self) -> float:
        """Seconds before the batch is past its timeout (its clock starts at the first call)."""
        return self.sent.remaining_s() if self.sent is not None else 0.0


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
        telemetry: BatchRecorder | None = None,
        peers: Peers | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.peers: Peers = peers if peers is not None else Alone()
        """The pool's other workers (several engines); :class:`Alone` for a worker alone."""
        self.batches_in_engine = 0
        """Batches handed to the engine and not yet recorded (2 while one waits behind the one rendering)."""
        self.telemetry = telemetry
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

    @property
    def free(self) -> bool:
        """Its engine is ready and holds no batch: a job handed over now starts at once."""
        return self.alive and self.batches_in_engine == 0 and self.engine.ready is not None

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Serve the queue until stopped."""
        self.alive = True
        try:
            await self._serve(until_idle=False)
        finally:
            self.alive = False

    async def _serve(self, *, until_idle: bool) -> None:
        """Take batches from the scheduler and keep the engine fed: while it renders one batch, the next compatible
        one is already claimed and handed over (prefetch, one batch ahead), so the engine never waits for SQLite,
        the files of the previous batch, or Discord. Results are recorded in the order the batches were sent.

        ``until_idle``: return once nothing is queued and nothing is with the engine, instead of waiting for work.
        """
        ahead: _InFlight | None = None
        """The batch with the engine, not yet recorded."""
        try:
            while not self._stopping:
                engine_up = self.engine.ready is not None
                if ahead is None and not engine_up and not until_idle:
                    await self._wait_for_engine()  # at start-up, and while a crashed engine restarts: jobs stay queued
                    continue
                self._wake.clear()
                jobs = await self._next_jobs(behind_another=ahead is not None) if engine_up or ahead is None else []
                if jobs:
                    sent = await self._send(jobs)
                    if ahead is not None:
                        await self._finish(ahead)
                    ahead = sent
                elif ahead is not None:
                    if not ahead.done():  # a job queued meanwhile is sent behind it at once
                        await self.external_wait(self._wake_or_timeout(ahead), reason="engine rendering")
                    if ahead.done() or not ahead.time_left():
                        await self._finish(ahead)
                        ahead = None
                elif until_idle:
                    return
                else:
                    await self.external_wait(self._wake.wait(), reason="waiting for queued jobs")
            if ahead is not None:  # stopping: the batch with the engine still ends as usual
                await self._finish(ahead)
                ahead = None
        finally:
            if ahead is not None and ahead.sent is not None:  # cancelled: nobody records it; leases bring it back
                ahead.sent.abandon()
                self.batches_in_engine = 0

    async def _wake_or_timeout(self, ahead: _InFlight) -> None:
        """Until a job is queued, a reply of ``ahead`` arrives (each one wakes the worker), or its time is up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ahead.time_left()):
                await self._wake.wait()

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
        """Run jobs until none are queued (a "burst" for the CLI, benchmarks and tests), pipelined as :meth:`run`."""
        await self.external_wait(self.engine.wait_ready(), reason="engine loading its model")
        await self._serve(until_idle=True)

    async def _next_jobs(self, *, behind_another: bool = False) -> list[Job]:
        """Up to ``scheduler.max_batch`` compatible jobs (one at a time for the CLI's own jobs); ``behind_another``:
        they will wait in the engine behind the batch it renders."""
        if self.only is not None:
            job = await self.scheduler.claim_next(self.only)
            return [job] if job is not None else []
        if behind_another and self.peers.other_is_free(self):
            return []  # a free engine starts it now; here it would wait for the batch rendering
        jobs = await self.scheduler.dispatch(behind_another=behind_another, affinity=self.peers.affinity_for(self))
        if jobs and len(self.scheduler.index):
            self.peers.wake_all()  # more waits: a free engine takes it (or the one its model is loaded on)
        return jobs

    async def run_jobs(self, jobs: list[Job]) -> None:
        """Render a batch of compatible jobs in one engine call; each job ends on its own."""
        await self._finish(await self._send(jobs))

    async def _send(self, jobs: list[Job]) -> _InFlight:
        """Announce the jobs and hand them to the engine as one batch; the engine's heartbeats and progress renew
        their leases from now on (also while the batch waits behind another)."""
        for job in jobs:
            await self.events.emit(JobEvent(EventKind.STARTED, job))
        safety = self.scheduler.settings.safety
        tasks = [with_safety_check(render_task_for(job, self.images_dir), safety, job.origin) for job in jobs]
        by_id = {job.id: job for job in jobs}
        loop = asyncio.get_running_loop()
        heartbeat_s = heartbeat_interval(self.scheduler.policy.lease_s)
        renew_every_s = heartbeat_s / 2
        last_renewal = {job.id: loop.time() for job in jobs}
        last_step: dict[int, int] = {}

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
            # A preview is encoded off the engine's render thread and may arrive after the next step's report.
            step = last_step[job.id] = max(last_step.get(job.id, 0), progress.step)
            event = JobEvent(EventKind.PROGRESS, job, step=step, total=progress.total, preview=progress.preview)
            self._in_background(loop, self.events.emit(event))
            keep_alive()

        try:
            sent = await self.external_wait(
                self.engine.send_batch(tasks, on_progress, on_heartbeat=on_heartbeat, heartbeat_s=heartbeat_s),
                reason="engine starting",
            )
        except (EngineCrashedError, EngineStartError) as error:
            return _InFlight(jobs, None, error)
        sent.on_reply(self._wake.set)
        self.batches_in_engine += 1
        if self.telemetry is not None:
            self.telemetry.batch_sent(len(jobs))
        return _InFlight(jobs, sent, None)

    async def _finish(self, batch: _InFlight) -> None:
        """Wait for a sent batch's results and end each of its jobs: record, fail (refund) or retry after a crash.
        Then the other workers of a pool look again: this engine may be free, the jobs' members below their limit."""
        try:
            await self._end_batch(batch)
        finally:
            self.peers.wake_all()

    async def _end_batch(self, batch: _InFlight) -> None:
        jobs = batch.jobs
        error: BaseException | None = batch.error
        results: list[TaskDone | TaskFailed] = []
        if batch.sent is not None:
            try:
                results = await self.external_wait(batch.sent.results(), reason="engine rendering")
            except (EngineCrashedError, EngineStartError) as raised:
                error = raised
            finally:
                self.batches_in_engine -= 1
                if self.telemetry is not None:
                    self.telemetry.batch_ended()
        if isinstance(error, EngineCrashedError):
            for job in jobs:
                await self._after_crash(job, str(error))
            return
        if isinstance(error, EngineStartError):
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
            self.peers.wake_all()  # another engine takes it while this one restarts
            self.wake()
        else:
            message = f"the engine crashed {job.attempts} times on this job; giving up ({reason})"
            await self._fail(job, message, message)

    async def _judge_safety(self, job: Job, done: TaskDone) -> bool:
        """Keep the image safety check's verdict on the job (:mod:`bot.image_safety`). A flagged job the server
        withholds, or a checked job that came back unchecked, fails here (refunded) and its files are deleted:
        False then, True when its result is to be recorded."""
        settings = self.scheduler.settings.safety
        try:
            safety = job_verdict(settings, job, done)
        except SafetyVerdictError as error:
            await asyncio.to_thread(delete_job_files, done)
            await self._fail(job, str(error), str(error))
            return False
        if safety != job.safety:
            await self.scheduler.store.write(lambda db: record_safety(db, job.id, safety))
        if not withholds(settings, safety):
            return True
        message = withheld_message(safety, len(done.paths))
        await self._fail(job, message, message)
        await asyncio.to_thread(delete_job_files, done)
        return False

    async def _record(self, job: Job, done: TaskDone) -> None:
        """Record the files the engine wrote (its images and their grid) as the job's result, and announce it."""
        if not await self._judge_safety(job, done):
            return
        images = tuple(
            ImageResult(job.id, index, path, seed, done.width, done.height)
            for index, (path, seed) in enumerate(zip(done.paths, done.seeds, strict=True))
        )
        if done.suggestions:  # a describe job's prompts, kept before it completes (another attempt replaces them)
            await self.scheduler.store.write(lambda db: save_suggestions(db, job.id, done.suggestions))
        try:
            completed = await self.scheduler.complete(job.id, images, done.grid_path)
        except JobNotFoundError:
            log.warning("job %s finished after it was cancelled; its images are discarded", job.id)
            return
        self.last_finished_at = time.time()
        await self.events.emit(JobEvent(EventKind.COMPLETED, completed, images=images))
