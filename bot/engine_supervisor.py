"""The bot's side of the engine: start the engine process, hand it work, stream its events, notice its death.

The engine runs in a child process started with multiprocessing's ``spawn`` method (a fresh interpreter: no
inherited CUDA state, no inherited locks). A reader thread turns messages from the pipe into results on the
event loop of whoever waits for them, so one engine process can outlive an event loop (the tests share one).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bot.errors import EngineCrashedError, EngineStartError, RenderFailedError
from engine.process import run_engine
from engine.protocol import (
    Cancel,
    EngineConfig,
    EngineFatal,
    EngineReady,
    FromEngine,
    Progress,
    RenderBatch,
    RenderTask,
    Shutdown,
    TaskDone,
    TaskFailed,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def restart_delay(crashes: int, *, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S) -> float:
    """Seconds to wait before starting the engine again after ``crashes`` crashes in a row (0 after none)."""
    if crashes <= 0:
        return 0.0
    return min(max_s, first_s * 2 ** (crashes - 1))


@dataclass
class _Pending:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[TaskDone | TaskFailed]
    on_progress: ProgressCallback | None
    context: contextvars.Context


class _EngineRun:
    """One engine process and the thread that reads from it."""

    def __init__(self, config: EngineConfig, on_message: Callable[[_EngineRun, FromEngine | None], None]) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        self.conn: Connection = parent
        self.process: BaseProcess = context.Process(
            target=run_engine, args=(child, config), name="imagine-engine", daemon=True
        )
        self.process.start()
        child.close()
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
        self.process.join(timeout=5)
        self._on_message(self, None)

    def send(self, message: object) -> None:
        with self._send_lock:
            self.conn.send(message)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()


class EngineSupervisor:
    """Owns the engine process. Safe to share between event loops; one job renders at a time."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        start_timeout_s: float = 600.0,
        job_timeout_s: float = 900.0,
    ) -> None:
        self.config = config
        self.start_timeout_s = start_timeout_s
        self.job_timeout_s = job_timeout_s
        self.ready: EngineReady | None = None
        self.fatal: str | None = None
        self.restarts = 0
        self.crashes_in_a_row = 0
        """Unexpected exits since the last finished job; the next start waits :func:`restart_delay` of it."""
        self._not_before = 0.0
        self._run: _EngineRun | None = None
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._ready_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[EngineReady]]] = []

    # --- process lifecycle -------------------------------------------------------------------------------

    def spawn(self) -> None:
        """Start the engine process if it is not running. Returns at once; see :meth:`wait_ready`."""
        with self._lock:
            if self._run is not None and self._run.alive:
                return
            if self._run is not None:
                self.restarts += 1
            self.ready = None
            self.fatal = None
            self._run = _EngineRun(self.config, self._on_message)
        log.info("engine process started (pid %s) for model %s", self._run.process.pid, self.config.model_name)

    @property
    def alive(self) -> bool:
        run = self._run
        return run is not None and run.alive

    @property
    def pid(self) -> int | None:
        run = self._run
        return None if run is None else run.process.pid

    def kill(self) -> None:
        """SIGKILL the engine (a stuck job, or a test of crash recovery)."""
        run = self._run
        if run is not None and run.alive:
            run.process.kill()
            run.process.join(5)  # reaped, so the next wait_ready starts a fresh engine instead of reusing this one

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the engine to exit, and kill it if it does not within ``timeout`` seconds."""
        run = self._run
        if run is None:
            return
        if run.alive:
            with contextlib.suppress(OSError, ValueError):
                run.send(Shutdown())
            run.process.join(timeout)
            if run.alive:
                run.process.kill()
                run.process.join(5)
        run.reader.join(timeout=10)
        run.conn.close()

    async def wait_ready(self) -> EngineReady:
        """Start the engine if needed (after the crash backoff) and wait until its model is loaded."""
        if not self.alive:
            delay = self._not_before - time.monotonic()
            if delay > 0:
                log.info("restarting the engine in %.1f s (crash %d in a row)", delay, self.crashes_in_a_row)
                await asyncio.sleep(delay)
        self.spawn()
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.ready is not None:
                return self.ready
            if self.fatal is not None:
                raise EngineStartError(self.fatal)
            future: asyncio.Future[EngineReady] = loop.create_future()
            self._ready_waiters.append((loop, future))
        try:
            return await asyncio.wait_for(future, self.start_timeout_s)
        except TimeoutError:
            self.kill()
            raise EngineStartError(
                f"the engine did not load model {self.config.model_name!r} within {self.start_timeout_s:g} s; "
                "raise engine_start_timeout_s or check the model"
            ) from None

    # --- work --------------------------------------------------------------------------------------------

    async def render(self, task: RenderTask, on_progress: ProgressCallback | None = None) -> TaskDone:
        """Render one task. Raises EngineCrashedError if the engine dies, RenderFailedError if the job fails."""
        (result,) = await self.render_batch([task], on_progress)
        if isinstance(result, TaskFailed):
            raise RenderFailedError(result.message, reason=result.reason)
        return result

    async def render_batch(
        self, tasks: Sequence[RenderTask], on_progress: ProgressCallback | None = None
    ) -> list[TaskDone | TaskFailed]:
        """Hand several tasks to the engine at once; compatible ones render in one pipeline call.

        Returns one TaskDone or TaskFailed per task, in order (``reason`` ``timeout`` for tasks still running
        after ``job_timeout_s``, when the engine is killed and restarted). Raises EngineCrashedError if the
        engine dies, since every task of the batch may then be retried.
        """
        if not tasks:
            return []
        if len({task.job_id for task in tasks}) != len(tasks):
            raise ValueError("tasks of one batch must have different job ids")
        await self.wait_ready()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[TaskDone | TaskFailed]] = []
        run = self._run
        with self._lock:
            if run is None or not run.alive:
                raise EngineCrashedError("the engine process is not running")
            for task in tasks:
                future: asyncio.Future[TaskDone | TaskFailed] = loop.create_future()
                self._pending[task.job_id] = _Pending(loop, future, on_progress, contextvars.copy_context())
                futures.append(future)
        try:
            run.send(RenderBatch(tuple(tasks)))
            done, _ = await asyncio.wait(futures, timeout=self.job_timeout_s * len(tasks))
            timed_out = [future not in done for future in futures]  # decided before the kill settles them
            if any(timed_out):
                log.error("batch %s ran past its timeout; restarting the engine", [t.job_id for t in tasks])
                self.kill()
            results: list[TaskDone | TaskFailed] = []
            for task, future, late in zip(tasks, futures, timed_out, strict=True):
                if not late:
                    results.append(future.result())  # raises EngineCrashedError when the engine died
                else:
                    future.cancel()
                    results.append(
                        TaskFailed(
                            task.job_id,
                            "timeout",
                            f"the job took longer than {self.job_timeout_s:g} s and was stopped; "
                            "use fewer steps or a smaller size",
                        )
                    )
            return results
        except (OSError, ValueError) as error:
            raise EngineCrashedError(f"could not reach the engine: {error}") from error
        finally:
            with self._lock:
                for task in tasks:
                    self._pending.pop(task.job_id, None)

    async def cancel(self, job_id: int) -> None:
        run = self._run
        if run is not None and run.alive:
            run.send(Cancel(job_id))

    # --- messages from the reader thread -----------------------------------------------------------------

    def _on_message(self, run: _EngineRun, message: FromEngine | None) -> None:
        if message is None:
            self._on_exit(run)
        elif isinstance(message, EngineReady):
            log.info(
                "engine ready: %s on %s (%s) in %.1f s",
                message.model_name,
                message.device,
                message.dtype,
                message.load_seconds,
            )
            with self._lock:
                self.ready = message
                waiters, self._ready_waiters = self._ready_waiters, []
            for loop, future in waiters:
                _resolve(loop, future, result=message)
        elif isinstance(message, EngineFatal):
            log.error("engine cannot start: %s", message.message)
            with self._lock:
                self.fatal = message.message
                waiters, self._ready_waiters = self._ready_waiters, []
            for loop, future in waiters:
                _resolve(loop, future, error=EngineStartError(message.message))
        elif isinstance(message, Progress):
            pending = self._pending.get(message.job_id)
            if pending is not None and pending.on_progress is not None:
                pending.loop.call_soon_threadsafe(pending.on_progress, message, context=pending.context)
        elif isinstance(message, TaskDone | TaskFailed):
            with self._lock:
                pending = self._pending.get(message.job_id)
            if pending is None:
                log.warning("engine reported on job %s that nobody waits for", message.job_id)
            else:
                if isinstance(message, TaskDone):
                    self.crashes_in_a_row = 0
                _resolve(pending.loop, pending.future, result=message)

    def _on_exit(self, run: _EngineRun) -> None:
        code = run.process.exitcode
        with self._lock:
            if self._run is not run:
                return
            pending, self._pending = list(self._pending.values()), {}
            waiters, self._ready_waiters = self._ready_waiters, []
            fatal = self.fatal
        if code not in (0, None) or pending:
            with self._lock:
                self.crashes_in_a_row += 1
                self._not_before = time.monotonic() + restart_delay(self.crashes_in_a_row)
            log.error("engine process exited with code %s while holding %d job(s)", code, len(pending))
        for item in pending:
            _resolve(item.loop, item.future, error=EngineCrashedError(f"the engine exited (code {code})"))
        for loop, future in waiters:
            message = fatal or f"the engine exited (code {code}) before its model was loaded"
            _resolve(loop, future, error=EngineStartError(message))


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
