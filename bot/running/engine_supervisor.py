"""The bot's side of the engine: hand it work, stream its events, settle each job once.

:class:`EngineSupervisor` is the engine host (:mod:`bot.running.engine_host`: the process's start, death, restart and
stop) plus the bookkeeping of work: which jobs an engine holds and who waits for each, a batch's timeout, cancels
kept until their job settles, and the late replies of abandoned attempts. A reader thread per engine turns its
messages into results on the event loop of whoever waits for them, so one engine process can outlive an event loop
(the tests share one).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.errors import EngineCrashedError
from bot.running.engine_host import EngineHost, StartRun
from bot.running.engine_run import EngineRun, resolve_future
from engine.protocol import (
    HEARTBEAT_S,
    Cancel,
    EngineConfig,
    FailureReason,
    FromEngine,
    Heartbeat,
    Progress,
    RenderBatch,
    RenderTask,
    TaskDone,
    TaskFailed,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
HeartbeatCallback = Callable[[Heartbeat], None]

MAX_KEPT_CANCELS = 10_000
"""Cancels kept for jobs no batch holds (yet); the oldest are dropped beyond this."""


@dataclass
class _Pending:
    run: EngineRun
    """The engine the task was sent to: only that process's messages settle it."""
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[TaskDone | TaskFailed]
    on_progress: ProgressCallback | None
    on_heartbeat: HeartbeatCallback | None
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class SentBatch:
    """A batch handed to the engine: wait for its results once (:meth:`results`), or give it up (:meth:`abandon`)."""

    def __init__(
        self,
        supervisor: EngineSupervisor,
        tasks: tuple[RenderTask, ...],
        futures: dict[int, asyncio.Future[TaskDone | TaskFailed]],
        run: EngineRun | None,
    ) -> None:
        self._supervisor = supervisor
        self.tasks = tasks
        self._futures = futures
        self.run = run
        """The engine the batch was sent to; None when nothing was sent (every task was cancelled first)."""
        self._settled = False
        self._deadline: float | None = None

    def done(self) -> bool:
        """Every task the engine was given has its reply (or the engine died): :meth:`results` will not wait."""
        return all(future.done() for future in self._futures.values())

    def on_reply(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the waiting loop) as each task's reply arrives or the engine dies."""
        for future in self._futures.values():
            future.add_done_callback(lambda _future: callback())

    def remaining_s(self) -> float:
        """Seconds left before the batch is past its timeout (``job_timeout_s`` per task). The clock starts the
        first time anyone asks, which the worker does once the batch ahead of it has ended: a batch that waited
        behind another in the engine was not running meanwhile."""
        now = asyncio.get_running_loop().time()
        if self._deadline is None:
            self._deadline = now + self._supervisor.job_timeout_s * len(self._futures)
        return max(0.0, self._deadline - now)

    async def results(self) -> list[TaskDone | TaskFailed]:
        """One reply per task, in order, as :meth:`EngineSupervisor.render_batch` returns them; tasks still without
        one when :meth:`remaining_s` runs out time out (the engine is killed and restarted)."""
        supervisor = self._supervisor
        try:
            timed_out: set[int] = set()
            if self._futures:
                done, _ = await asyncio.wait(self._futures.values(), timeout=self.remaining_s())
                timed_out = {job_id for job_id, future in self._futures.items() if future not in done}
                if timed_out and self.run is not None:  # decided before the kill settles them
                    log.error("batch %s ran past its timeout; restarting the engine", sorted(timed_out))
                    supervisor._kill(self.run)
            return [
                supervisor._result(task, self._futures.get(task.job_id), task.job_id in timed_out)
                for task in self.tasks
            ]
        except asyncio.CancelledError:  # nobody will hear the results: stop the work they would come from
            self.abandon()
            raise
        finally:
            self._settle()

    def abandon(self) -> None:
        """Nobody will wait for this batch: the engine is told to stop its unfinished tasks, whose late replies are
        then no news."""
        unfinished = [job_id for job_id, future in self._futures.items() if not future.done()]
        self._supervisor._abandon(self.run, unfinished)
        self._settle()

    def _settle(self) -> None:
        if self._settled:
            return
        self._settled = True
        supervisor = self._supervisor
        with supervisor._lock:
            for task in self.tasks:
                pending = supervisor._pending.get(task.job_id)
                if pending is not None and pending.future is self._futures.get(task.job_id):
                    del supervisor._pending[task.job_id]
                supervisor._cancelled.pop(task.job_id, None)  # settled: the cancel has done its work


class EngineSupervisor(EngineHost):
    """Owns the engine process and hands it work. Safe to share between event loops."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        start_timeout_s: float = 600.0,
        job_timeout_s: float = 900.0,
        download_stall_s: float | None = None,
        start_run: StartRun = EngineRun,
    ) -> None:
        super().__init__(
            config, start_timeout_s=start_timeout_s, download_stall_s=download_stall_s, start_run=start_run
        )
        self.job_timeout_s = job_timeout_s
        self._pending: dict[int, _Pending] = {}
        self._cancelled: OrderedDict[int, None] = OrderedDict()
        """Jobs cancelled and not yet settled by a batch: never sent to an engine from now on."""
        self._abandoned: OrderedDict[int, EngineRun] = OrderedDict()
        """Jobs whose waiter gave up (it was cancelled) while an engine held them, with that engine: its next reply
        on the job belongs to the abandoned attempt, even when a later attempt of the job waits on the same engine."""
        self._models_of: tuple[EngineRun | None, tuple[str, ...]] = (None, ())
        """The engine process and the models it was last handed work for, most recent first."""

    @property
    def loaded_models(self) -> frozenset[str]:
        """The models the running engine holds as far as the bot knows: its start-up model and the latest ones it
        was handed work for, up to ``max_loaded_models`` (the engine keeps that many, least recently used out)."""
        ready = self.ready
        if ready is None:
            return frozenset()
        run, recent = self._models_of
        if run is not self._run:
            recent = ()
        held = (*recent, ready.model_name) if len(recent) < self.config.max_loaded_models else recent
        return frozenset(held[: self.config.max_loaded_models])

    def _used_models(self, run: EngineRun, tasks: Sequence[RenderTask]) -> None:
        """``run`` was handed ``tasks``: their models are now its most recently used."""
        previous_run, recent = self._models_of
        if previous_run is not run:
            recent = ()
        for task in tasks:
            model = task.model or self.config.model_name
            recent = (model, *(name for name in recent if name != model))
        self._models_of = (run, recent[: self.config.max_loaded_models])

    # --- work --------------------------------------------------------------------------------------------

    async def render_batch(
        self,
        tasks: Sequence[RenderTask],
        on_progress: ProgressCallback | None = None,
        *,
        on_heartbeat: HeartbeatCallback | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> list[TaskDone | TaskFailed]:
        """Hand several tasks to the engine at once and wait for them; compatible ones render in one pipeline call.

        Returns one TaskDone or TaskFailed per task, in order (``reason`` ``timeout`` for tasks still running
        after ``job_timeout_s``, when the engine is killed and restarted; ``cancelled`` for a task cancelled
        before it reached the engine, which is then never sent). Raises EngineCrashedError if the engine dies,
        since every task of the batch may then be retried. ``on_heartbeat`` hears every ``heartbeat_s`` seconds,
        in every phase (loading a model, rendering, writing files), that the engine still works on a task.
        """
        sent = await self.send_batch(tasks, on_progress, on_heartbeat=on_heartbeat, heartbeat_s=heartbeat_s)
        return await sent.results()

    async def send_batch(
        self,
        tasks: Sequence[RenderTask],
        on_progress: ProgressCallback | None = None,
        *,
        on_heartbeat: HeartbeatCallback | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> SentBatch:
        """Hand several tasks to the engine (once it is ready) and return at once; :meth:`SentBatch.results` waits
        for them as :meth:`render_batch` does. A batch sent while another is with the engine renders right after it,
        so the engine never waits for the bot between two batches."""
        if not tasks:
            return SentBatch(self, (), {}, None)
        if len({task.job_id for task in tasks}) != len(tasks):
            raise ValueError("tasks of one batch must have different job ids")
        loop = asyncio.get_running_loop()
        futures: dict[int, asyncio.Future[TaskDone | TaskFailed]] = {}
        sent = SentBatch(self, tuple(tasks), futures, None)
        try:
            if not all(task.job_id in self._cancelled for task in tasks):
                await self.wait_ready()
            with self._lock:  # checking for cancels and sending are one step: a Cancel always follows its task
                wanted = [task for task in tasks if task.job_id not in self._cancelled]
                if wanted:
                    run = self._run
                    if run is None or not run.alive:
                        raise EngineCrashedError("the engine process is not running")
                    for task in wanted:
                        future: asyncio.Future[TaskDone | TaskFailed] = loop.create_future()
                        self._pending[task.job_id] = _Pending(run, loop, future, on_progress, on_heartbeat)
                        futures[task.job_id] = future
                    try:
                        run.send(RenderBatch(tuple(wanted), heartbeat_s=heartbeat_s))
                    except (OSError, ValueError) as error:
                        raise EngineCrashedError(f"could not reach the engine: {error}") from error
                    sent.run = run
                    self._used_models(run, wanted)
        except BaseException:
            sent.abandon()
            raise
        return sent

    def _result(
        self, task: RenderTask, future: asyncio.Future[TaskDone | TaskFailed] | None, late: bool
    ) -> TaskDone | TaskFailed:
        if future is None:
            return TaskFailed(task.job_id, FailureReason.CANCELLED, "cancelled before the engine started it")
        if late:
            future.cancel()
            return TaskFailed(
                task.job_id,
                FailureReason.TIMEOUT,
                f"the job took longer than {self.job_timeout_s:g} s and was stopped; use fewer steps or a smaller size",
            )
        return future.result()  # raises EngineCrashedError when the engine died

    def _abandon(self, run: EngineRun | None, job_ids: list[int]) -> None:
        """The waiter of these jobs, sent to ``run``, was cancelled: tell the engine to stop them, and expect their
        late replies (they are no news)."""
        if run is None or not job_ids:
            return
        with self._lock:
            for job_id in job_ids:
                self._abandoned[job_id] = run
            while len(self._abandoned) > MAX_KEPT_CANCELS:
                self._abandoned.popitem(last=False)
            if run.alive:
                with contextlib.suppress(OSError, ValueError):
                    for job_id in job_ids:
                        run.send(Cancel(job_id))

    async def cancel(self, job_id: int) -> None:
        """Stop a job: at once if an engine holds it, else whenever it would be handed over (it never is).

        The cancel is kept until a batch holding the job ends, so a job cancelled while the engine restarts is
        not sent to the new engine; an engine that already holds the job is sent a Cancel (in order after the
        job, since both are sent under one lock).
        """
        with self._lock:
            self._cancelled[job_id] = None
            while len(self._cancelled) > MAX_KEPT_CANCELS:
                self._cancelled.popitem(last=False)
            pending = self._pending.get(job_id)
            if pending is not None and pending.run.alive:
                with contextlib.suppress(OSError, ValueError):  # a dead engine fails the job by itself
                    pending.run.send(Cancel(job_id))

    # --- messages from the reader thread -----------------------------------------------------------------

    def _on_job_message(self, run: EngineRun, message: FromEngine) -> None:
        """Route a heartbeat or progress to its job's callbacks, and a result to its waiter, when ``run`` holds it."""
        if isinstance(message, Heartbeat | Progress):
            pending = self._pending.get(message.job_id)
            if pending is None or pending.run is not run:
                return
            callback: Callable[[Any], None] | None = (
                pending.on_heartbeat if isinstance(message, Heartbeat) else pending.on_progress
            )
            if callback is not None:
                with contextlib.suppress(RuntimeError):  # the waiting loop closed
                    pending.loop.call_soon_threadsafe(callback, message, context=pending.context)
        elif isinstance(message, TaskDone | TaskFailed):
            with self._lock:
                # An engine answers in order: after an abandoned attempt, its first reply on the job is that one's.
                abandoned = self._abandoned.get(message.job_id) is run
                if abandoned:
                    del self._abandoned[message.job_id]
                pending = None if abandoned else self._pending.get(message.job_id)
                if pending is not None and pending.run is not run:
                    pending = None
                if isinstance(message, TaskDone) and pending is not None:
                    self.crashes_in_a_row = 0
            if abandoned:
                log.debug("engine reported on job %s after its waiter gave up", message.job_id)
            elif pending is None:
                log.warning("engine reported on job %s that nobody waits for", message.job_id)
            else:
                resolve_future(pending.loop, pending.future, result=message)

    def _take_jobs(self, run: EngineRun) -> list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]]:
        """Remove the tasks sent to ``run`` and return their waiters. Call with the lock held."""
        taken = [job_id for job_id, pending in self._pending.items() if pending.run is run]
        return [(pending.loop, pending.future) for pending in (self._pending.pop(job_id) for job_id in taken)]
