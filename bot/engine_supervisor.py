"""The bot's side of the engine: start the engine process, hand it work, stream its events, notice its death.

The engine runs in a child process started with multiprocessing's ``spawn`` method (a fresh interpreter: no
inherited CUDA state, no inherited locks). A reader thread turns messages from the pipe into results on the
event loop of whoever waits for them, so one engine process can outlive an event loop (the tests share one).

Each engine process is one :class:`_EngineRun` that keeps its own state (ready, fatal, killed, exited), so
nothing an old process said or left behind is taken for the new one's. Only the run's reader thread waits for its
process (reaps it): two threads waiting on one child race in ``waitpid``, and the loser sees a dead engine as
alive. Everyone else judges the process by the run's flags and its sentinel, which never reaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import multiprocessing
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bot.engine_start import DOWNLOAD_STALL_S, StartWatch, phase_line, should_log
from bot.errors import EngineCrashedError, EngineStartError, RenderFailedError
from bot.interrupts import children_ignore_sigint
from engine.process import run_engine
from engine.protocol import (
    HEARTBEAT_S,
    Cancel,
    EngineConfig,
    EngineFatal,
    EngineReady,
    EngineStarting,
    FromEngine,
    Heartbeat,
    Progress,
    RenderBatch,
    RenderTask,
    Shutdown,
    TaskDone,
    TaskFailed,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
HeartbeatCallback = Callable[[Heartbeat], None]

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
REAP_WAIT_S = 10.0
"""How long a new engine waits for the previous process to be gone (its memory, its GPU memory, released)."""
MAX_KEPT_CANCELS = 10_000
"""Cancels kept for jobs no batch holds (yet); the oldest are dropped beyond this."""


def restart_delay(crashes: int, *, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S) -> float:
    """Seconds to wait before starting the engine again after ``crashes`` crashes in a row (0 after none)."""
    if crashes <= 0:
        return 0.0
    return min(max_s, first_s * 2 ** (crashes - 1))


class _EngineRun:
    """One engine process, the thread that reads from it, and what that process said about itself."""

    def __init__(self, config: EngineConfig, on_message: Callable[[_EngineRun, FromEngine | None], None]) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        self.conn: Connection = parent
        self.process: BaseProcess = context.Process(
            target=run_engine, args=(child, config), name="imagine-engine", daemon=True
        )
        with children_ignore_sigint():  # Ctrl-C reaches the engine too: the bot stops it (run_engine ignores it)
            self.process.start()
        child.close()
        self.pid: int | None = self.process.pid
        self.ready: EngineReady | None = None
        self.fatal: str | None = None
        self.killed = False
        """SIGKILLed by the supervisor: gone from that moment, whether or not the process is reaped yet."""
        self.stopping = False
        """Asked to exit (Shutdown): its exit is no crash."""
        self.ready_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[EngineReady]]] = []
        self.starting: EngineStarting | None = None
        """What the engine last said it does on its way to ready (importing, downloading, loading)."""
        self.start_wakers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        """Waiters to wake when ``starting`` changes (they re-check the start clock)."""
        self.start_logged_at = 0.0
        self.exited = threading.Event()
        """The pipe closed: the process is dead or dying."""
        self.gone = threading.Event()
        """The process is reaped (its memory is released)."""
        self._send_lock = threading.Lock()
        self._on_message = on_message
        self.reader = threading.Thread(target=self._read, name="engine-reader", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break
            self._on_message(self, message)
        self.exited.set()
        self.process.join(timeout=5)  # this thread alone reaps the process
        if not self._sentinel_ready():  # it closed its pipe but does not exit
            with contextlib.suppress(OSError):
                self.process.kill()
            self.process.join(timeout=5)
        with self._send_lock:
            self.conn.close()
        self._on_message(self, None)
        self.gone.set()

    def _sentinel_ready(self) -> bool:
        """True once the process has exited (reaped or not); reading the sentinel never reaps. A plain ``select``
        with no timeout: ``multiprocessing.connection.wait`` loops on the monotonic clock, which a test harness
        with a virtual clock (simcord) freezes, so a zero-timeout wait there never returns."""
        ready, _writable, _failed = select.select([self.process.sentinel], [], [], 0)
        return bool(ready)

    def exit_code(self) -> int | None:
        """The exit code once reaped. Another thread's reaping (``multiprocessing``'s clean-up when a process
        starts) may still be storing it, so give that a moment."""
        for _ in range(50):
            code = self.process.exitcode
            if code is not None:
                return code
            time.sleep(0.01)
        return None

    def send(self, message: object) -> None:
        """Raises OSError or ValueError when the pipe is closed or broken (the engine is dead)."""
        with self._send_lock:
            self.conn.send(message)

    @property
    def alive(self) -> bool:
        return not self.killed and not self.exited.is_set() and not self._sentinel_ready()


@dataclass
class _Pending:
    run: _EngineRun
    """The engine the task was sent to: only that process's messages settle it."""
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[TaskDone | TaskFailed]
    on_progress: ProgressCallback | None
    on_heartbeat: HeartbeatCallback | None
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class EngineSupervisor:
    """Owns the engine process. Safe to share between event loops; one job renders at a time."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        start_timeout_s: float = 600.0,
        job_timeout_s: float = 900.0,
        download_stall_s: float | None = None,
    ) -> None:
        self.config = config
        self.start_timeout_s = start_timeout_s
        """How long the engine may take to start, not counting a download of its model that makes progress."""
        self.job_timeout_s = job_timeout_s
        self._download_stall_s = download_stall_s
        self.restarts = 0
        self.crashes_in_a_row = 0
        """Unexpected exits since the last finished job; the next start waits :func:`restart_delay` of it."""
        self._not_before = 0.0
        self._run: _EngineRun | None = None
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._cancelled: OrderedDict[int, None] = OrderedDict()
        """Jobs cancelled and not yet settled by a batch: never sent to an engine from now on."""
        self._abandoned: OrderedDict[int, _EngineRun] = OrderedDict()
        """Jobs whose waiter gave up (it was cancelled) while an engine held them, with that engine: its next reply
        on the job belongs to the abandoned attempt, even when a later attempt of the job waits on the same engine."""

    # --- process lifecycle -------------------------------------------------------------------------------

    @property
    def ready(self) -> EngineReady | None:
        """What the running engine said when its model loaded; None while it loads, or when it is not running."""
        run = self._run
        return run.ready if run is not None and run.alive else None

    @property
    def download_stall_s(self) -> float:
        """A start-up download with no new byte for this long has stalled: the start timeout, at most
        :data:`~bot.engine_start.DOWNLOAD_STALL_S`, unless set."""
        if self._download_stall_s is not None:
            return self._download_stall_s
        return min(self.start_timeout_s, DOWNLOAD_STALL_S)

    @property
    def starting(self) -> EngineStarting | None:
        """What the engine that is starting does now (importing, downloading with progress, loading); None once it
        is ready, or when none runs."""
        run = self._run
        return run.starting if run is not None and run.alive and run.ready is None else None

    @property
    def fatal(self) -> str | None:
        """Why the latest engine cannot start (a model that does not load); None otherwise."""
        run = self._run
        return None if run is None else run.fatal

    def spawn(self) -> None:
        """Start the engine process if it is not running. Returns at once; see :meth:`wait_ready`."""
        self._spawn()

    def _spawn(self) -> _EngineRun:
        with self._lock:
            if self._run is not None and self._run.alive:
                return self._run
            if self._run is not None:
                self.restarts += 1
            run = self._run = _EngineRun(self.config, self._on_message)
        log.info("engine process started (pid %s) for model %s", run.pid, self.config.model_name)
        return run

    @property
    def alive(self) -> bool:
        run = self._run
        return run is not None and run.alive

    @property
    def pid(self) -> int | None:
        run = self._run
        return None if run is None else run.pid

    def kill(self, *, deliberate: bool = False) -> None:
        """SIGKILL the engine (a stuck job, or a test of crash recovery). Returns at once: the engine counts as
        gone from now on, its jobs fail with EngineCrashedError, and the next :meth:`wait_ready` starts a fresh
        one (after the crash backoff, and once this process is reaped). ``deliberate``: it is being stopped anyway
        (a command cut short twice), which is no crash and not logged as one."""
        run = self._run
        if run is not None:
            self._kill(run, deliberate=deliberate)

    def _kill(self, run: _EngineRun, *, deliberate: bool = False) -> None:
        """SIGKILL ``run``. ``deliberate``: it was being stopped (:meth:`stop`), so this is no crash and no news."""
        with self._lock:
            if run.killed or run.exited.is_set():
                return
            run.killed = True
            pending = self._take_pending(run)
            waiters, run.ready_waiters = run.ready_waiters, []
            if not deliberate:
                self._count_crash()
        with contextlib.suppress(OSError, ValueError):
            run.process.kill()  # not reaped before the reader thread sees the pipe close, so the pid is still its
        level = logging.DEBUG if deliberate else logging.WARNING
        log.log(level, "engine process %s killed while holding %d job(s)", run.pid, len(pending))
        for item in pending:
            _resolve(item.loop, item.future, error=EngineCrashedError("the engine was killed"))
        for loop, future in waiters:
            _resolve(loop, future, error=EngineStartError("the engine was killed before its model was loaded"))

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the engine to exit, and kill it if it does not within ``timeout`` seconds. An engine that is still
        starting (importing, downloading, loading) reads nothing before its model is loaded: it is killed at once."""
        run = self._run
        if run is None:
            return
        if run.alive:
            run.stopping = True
            if run.ready is not None:
                with contextlib.suppress(OSError, ValueError):
                    run.send(Shutdown())
                run.gone.wait(timeout)
        if not run.gone.is_set():
            self._kill(run, deliberate=run.stopping)
        run.reader.join(timeout=10)

    async def wait_ready(self) -> EngineReady:
        """Start the engine if needed (after the crash backoff) and wait until its model is loaded."""
        previous = self._run
        if previous is not None and not previous.alive:
            delay = self._not_before - time.monotonic()
            if delay > 0:
                log.info("restarting the engine in %.1f s (crash %d in a row)", delay, self.crashes_in_a_row)
                await asyncio.sleep(delay)
            if not previous.gone.is_set():  # let the old process release its (GPU) memory first
                await asyncio.to_thread(previous.gone.wait, REAP_WAIT_S)
        run = self._spawn()
        loop = asyncio.get_running_loop()
        with self._lock:
            if run.ready is not None and run.alive:
                return run.ready
            if run.fatal is not None:
                raise EngineStartError(run.fatal)
            if not run.alive:
                raise EngineStartError("the engine exited before its model was loaded")
            future: asyncio.Future[EngineReady] = loop.create_future()
            run.ready_waiters.append((loop, future))
        watch = StartWatch(self.config.model_name, self.start_timeout_s, self.download_stall_s, time.monotonic())
        try:
            while True:  # wake on ready/fatal/exit, on each report of the engine, or at the next deadline
                with self._lock:
                    status = run.starting
                    wake: asyncio.Future[None] = loop.create_future()
                    run.start_wakers.append((loop, wake))
                try:
                    watch.observe(time.monotonic(), status)
                    verdict = watch.verdict()
                    if verdict.expired:
                        self._kill(run)
                        raise EngineStartError(verdict.reason)
                    await asyncio.wait({future, wake}, timeout=verdict.wake_in_s, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    with self._lock, contextlib.suppress(ValueError):
                        run.start_wakers.remove((loop, wake))
                    wake.cancel()
                if future.done():
                    return future.result()
        finally:
            if not future.done():
                future.cancel()

    # --- work --------------------------------------------------------------------------------------------

    async def render(self, task: RenderTask, on_progress: ProgressCallback | None = None) -> TaskDone:
        """Render one task. Raises EngineCrashedError if the engine dies, RenderFailedError if the job fails."""
        (result,) = await self.render_batch([task], on_progress)
        if isinstance(result, TaskFailed):
            raise RenderFailedError(result.message, reason=result.reason)
        return result

    async def render_batch(
        self,
        tasks: Sequence[RenderTask],
        on_progress: ProgressCallback | None = None,
        *,
        on_heartbeat: HeartbeatCallback | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> list[TaskDone | TaskFailed]:
        """Hand several tasks to the engine at once; compatible ones render in one pipeline call.

        Returns one TaskDone or TaskFailed per task, in order (``reason`` ``timeout`` for tasks still running
        after ``job_timeout_s``, when the engine is killed and restarted; ``cancelled`` for a task cancelled
        before it reached the engine, which is then never sent). Raises EngineCrashedError if the engine dies,
        since every task of the batch may then be retried. ``on_heartbeat`` hears every ``heartbeat_s`` seconds,
        in every phase (loading a model, rendering, writing files), that the engine still works on a task.
        """
        if not tasks:
            return []
        if len({task.job_id for task in tasks}) != len(tasks):
            raise ValueError("tasks of one batch must have different job ids")
        loop = asyncio.get_running_loop()
        futures: dict[int, asyncio.Future[TaskDone | TaskFailed]] = {}
        sent_to: _EngineRun | None = None
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
                    sent_to = run
            timed_out: set[int] = set()
            if futures:
                done, _ = await asyncio.wait(futures.values(), timeout=self.job_timeout_s * len(futures))
                timed_out = {job_id for job_id, future in futures.items() if future not in done}
                if timed_out and sent_to is not None:  # decided before the kill settles them
                    log.error("batch %s ran past its timeout; restarting the engine", sorted(timed_out))
                    self._kill(sent_to)
            return [self._result(task, futures.get(task.job_id), task.job_id in timed_out) for task in tasks]
        except asyncio.CancelledError:  # nobody will hear the results: stop the work they would come from
            self._abandon(sent_to, [job_id for job_id, future in futures.items() if not future.done()])
            raise
        finally:
            with self._lock:
                for task in tasks:
                    pending = self._pending.get(task.job_id)
                    if pending is not None and pending.future is futures.get(task.job_id):
                        del self._pending[task.job_id]
                    self._cancelled.pop(task.job_id, None)  # settled: the cancel has done its work

    def _result(
        self, task: RenderTask, future: asyncio.Future[TaskDone | TaskFailed] | None, late: bool
    ) -> TaskDone | TaskFailed:
        if future is None:
            return TaskFailed(task.job_id, "cancelled", "cancelled before the engine started it")
        if late:
            future.cancel()
            return TaskFailed(
                task.job_id,
                "timeout",
                f"the job took longer than {self.job_timeout_s:g} s and was stopped; use fewer steps or a smaller size",
            )
        return future.result()  # raises EngineCrashedError when the engine died

    def _abandon(self, run: _EngineRun | None, job_ids: list[int]) -> None:
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

    def _on_message(self, run: _EngineRun, message: FromEngine | None) -> None:
        if message is None:
            self._on_exit(run)
        elif isinstance(message, Heartbeat | Progress):
            pending = self._pending.get(message.job_id)
            if pending is None or pending.run is not run:
                return
            callback: Callable[[Any], None] | None = (
                pending.on_heartbeat if isinstance(message, Heartbeat) else pending.on_progress
            )
            if callback is not None:
                with contextlib.suppress(RuntimeError):  # the waiting loop closed
                    pending.loop.call_soon_threadsafe(callback, message, context=pending.context)
        elif isinstance(message, EngineStarting):
            now = time.perf_counter()
            with self._lock:
                previous, run.starting = run.starting, message
                wakers, run.start_wakers = run.start_wakers, []
                logged = should_log(previous, message, now - run.start_logged_at)
                if logged:
                    run.start_logged_at = now
            if logged:
                log.info("engine %s: %s", run.pid, phase_line(message))
            for loop, wake in wakers:
                _resolve(loop, wake, result=None)
        elif isinstance(message, EngineReady):
            log.info(
                "engine ready: %s on %s (%s) in %.1f s",
                message.model_name,
                message.device,
                message.dtype,
                message.load_seconds,
            )
            with self._lock:
                run.ready = message
                waiters, run.ready_waiters = run.ready_waiters, []
            for loop, future in waiters:
                _resolve(loop, future, result=message)
        elif isinstance(message, EngineFatal):
            # Whoever waits for the engine gets the message as an EngineStartError and says it once.
            log.debug("engine cannot start: %s", message.message)
            with self._lock:
                run.fatal = message.message
                waiters, run.ready_waiters = run.ready_waiters, []
            for loop, future in waiters:
                _resolve(loop, future, error=EngineStartError(message.message))
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
                _resolve(pending.loop, pending.future, result=message)

    def _on_exit(self, run: _EngineRun) -> None:
        code = run.exit_code()
        with self._lock:
            if run.killed:  # its jobs and waiters were settled when it was killed
                return
            pending = self._take_pending(run)
            waiters, run.ready_waiters = run.ready_waiters, []
            crashed = not run.stopping and run.fatal is None and (code != 0 or bool(pending))
            if crashed:
                self._count_crash()
        if crashed:
            log.error("engine process exited with code %s while holding %d job(s)", code, len(pending))
        for item in pending:
            _resolve(item.loop, item.future, error=EngineCrashedError(f"the engine exited (code {code})"))
        for loop, future in waiters:
            message = run.fatal or f"the engine exited (code {code}) before its model was loaded"
            _resolve(loop, future, error=EngineStartError(message))

    def _take_pending(self, run: _EngineRun) -> list[_Pending]:
        """Remove and return the tasks sent to ``run``. Call with the lock held."""
        taken = [job_id for job_id, pending in self._pending.items() if pending.run is run]
        return [self._pending.pop(job_id) for job_id in taken]

    def _count_crash(self) -> None:
        """One more unexpected exit: the next start waits longer. Call with the lock held."""
        self.crashes_in_a_row += 1
        self._not_before = time.monotonic() + restart_delay(self.crashes_in_a_row)


def _resolve(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    *,
    result: Any = None,
    error: BaseException | None = None,
) -> None:
    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    if loop.is_closed():
        return
    with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
        loop.call_soon_threadsafe(settle)
