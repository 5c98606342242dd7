"""The engine process's life as the bot sees it: start it, wait until its model is loaded, notice its death,
restart it after a crash (with a growing delay), kill it, stop it.

:class:`EngineHost` holds one run at a time (a local :class:`~bot.running.engine_run.EngineRun`, or whatever its
``start_run`` starts: an engine on another host) and answers what the engine is doing (ready, starting, fatal).
Handing it work is :class:`~bot.running.engine_supervisor.EngineSupervisor`'s, which builds on this class: the jobs
an engine held are taken from it under the host's lock when that engine dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.errors import EngineCrashedError, EngineStartError
from bot.running.engine_run import EngineRun, RunLike, resolve_future
from bot.running.engine_start import DOWNLOAD_STALL_S, StartWatch, phase_line, should_log
from engine.protocol import EngineConfig, EngineFatal, EngineReady, EngineStarting, FromEngine, Shutdown

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
REAP_WAIT_S = 10.0
"""How long a new engine waits for the previous process to be gone (its memory, its GPU memory, released)."""

StartRun = Callable[[EngineConfig, Callable[[Any, FromEngine | None], None]], RunLike]
"""Starts one engine run on a configuration, handing its messages to a callback: a local process (:class:`EngineRun`)
or an engine on another host."""


def restart_delay(crashes: int, *, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S) -> float:
    """Seconds to wait before starting the engine again after ``crashes`` crashes in a row (0 after none)."""
    if crashes <= 0:
        return 0.0
    return min(max_s, first_s * 2 ** (crashes - 1))


class EngineHost:
    """Owns the engine process: one at a time, started on demand, restarted after a crash. Safe to share between
    event loops (a reader thread settles each waiter on its own loop)."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        start_timeout_s: float = 600.0,
        download_stall_s: float | None = None,
        start_run: StartRun = EngineRun,
    ) -> None:
        self.config = config
        self._start_run = start_run
        self.start_timeout_s = start_timeout_s
        """How long the engine may take to start, not counting a download of its model that makes progress."""
        self._download_stall_s = download_stall_s
        self.restarts = 0
        self.crashes_in_a_row = 0
        """Unexpected exits since the last finished job; the next start waits :func:`restart_delay` of it."""
        self._not_before = 0.0
        self._run: RunLike | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> EngineReady | None:
        """What the running engine said when its model loaded; None while it loads, or when it is not running."""
        run = self._run
        return run.ready if run is not None and run.alive else None

    @property
    def download_stall_s(self) -> float:
        """A start-up download with no new byte for this long has stalled: the start timeout, at most
        :data:`~bot.running.engine_start.DOWNLOAD_STALL_S`, unless set."""
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

    def _spawn(self) -> RunLike:
        with self._lock:
            if self._run is not None and self._run.alive:
                return self._run
            if self._run is not None:
                self.restarts += 1
            run = self._run = self._start_run(self.config, self._on_message)
        log.info("engine process started (pid %s) for model %s", run.pid, self.config.model_name)
        return run

    @property
    def alive(self) -> bool:
        run = self._run
        return run is not None and run.alive

    @property
    def pid(self) -> int | str | None:
        """The engine's process id, or where an engine on another host runs (a Ray actor's name, host and pid)."""
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

    def _kill(self, run: RunLike, *, deliberate: bool = False) -> None:
        """SIGKILL ``run``. ``deliberate``: it was being stopped (:meth:`stop`), so this is no crash and no news."""
        with self._lock:
            if run.killed or run.exited.is_set():
                return
            run.killed = True
            lost = self._take_jobs(run)
            waiters, run.ready_waiters = run.ready_waiters, []
            if not deliberate:
                self._count_crash()
        with contextlib.suppress(OSError, ValueError):
            run.kill()
        level = logging.DEBUG if deliberate else logging.WARNING
        log.log(level, "engine process %s killed while holding %d job(s)", run.pid, len(lost))
        for loop, future in lost:
            resolve_future(loop, future, error=EngineCrashedError("the engine was killed"))
        for loop, future in waiters:
            resolve_future(loop, future, error=EngineStartError("the engine was killed before its model was loaded"))

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

    # --- messages from the reader thread -----------------------------------------------------------------

    def _on_message(self, run: RunLike, message: FromEngine | None) -> None:
        if message is None:
            self._on_exit(run)
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
                resolve_future(loop, wake, result=None)
        elif isinstance(message, EngineReady):
            log.info(
                "engine ready: %s on %s (%s) in %.1f s; speed: %s",
                message.model_name,
                message.device,
                message.dtype,
                message.load_seconds,
                ", ".join(message.speed) or "-",
            )
            with self._lock:
                run.ready = message
                waiters, run.ready_waiters = run.ready_waiters, []
            for loop, future in waiters:
                resolve_future(loop, future, result=message)
        elif isinstance(message, EngineFatal):
            # Whoever waits for the engine gets the message as an EngineStartError and says it once.
            log.debug("engine cannot start: %s", message.message)
            with self._lock:
                run.fatal = message.message
                waiters, run.ready_waiters = run.ready_waiters, []
            for loop, future in waiters:
                resolve_future(loop, future, error=EngineStartError(message.message))
        else:
            self._on_job_message(run, message)

    def _on_job_message(self, run: RunLike, message: FromEngine) -> None:
        """A message about a job (heartbeat, progress, result) from ``run``; the subclass that hands out work
        routes it."""

    def _take_jobs(self, run: RunLike) -> list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]]:
        """Forget the jobs sent to ``run`` (it is gone) and return their waiters, to fail. Call with the lock held."""
        return []

    def _on_exit(self, run: RunLike) -> None:
        code = run.exit_code()
        with self._lock:
            if run.killed:  # its jobs and waiters were settled when it was killed
                return
            lost = self._take_jobs(run)
            waiters, run.ready_waiters = run.ready_waiters, []
            crashed = not run.stopping and run.fatal is None and (code != 0 or bool(lost))
            if crashed:
                self._count_crash()
        if crashed:
            log.error("engine process exited with code %s while holding %d job(s)", code, len(lost))
        for loop, future in lost:
            resolve_future(loop, future, error=EngineCrashedError(f"the engine exited (code {code})"))
        for loop, future in waiters:
            message = run.fatal or f"the engine exited (code {code}) before its model was loaded"
            resolve_future(loop, future, error=EngineStartError(message))

    def _count_crash(self) -> None:
        """One more unexpected exit: the next start waits longer. Call with the lock held."""
        self.crashes_in_a_row += 1
        self._not_before = time.monotonic() + restart_delay(self.crashes_in_a_row)
