"""One engine process as the bot sees it: the child process, the thread that reads its pipe, and what it said.

The engine runs in a child process started with multiprocessing's ``spawn`` method (a fresh interpreter: no
inherited CUDA state, no inherited locks). The reader thread hands every message to the owner's callback, and
``None`` once the pipe closed and the process is reaped.

Each process is one :class:`EngineRun` with its own state (ready, fatal, killed, exited), so nothing an old process
said or left behind is taken for the new one's. Only the run's reader thread waits for its process (reaps it): two
threads waiting on one child race in ``waitpid``, and the loser sees a dead engine as alive. Everyone else judges
the process by the run's flags and its sentinel, which never reaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import select
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from bot.running.child_signals import children_ignore_sigint
from engine.process import run_engine
from engine.protocol import EngineConfig, EngineReady, EngineStarting, FromEngine


class RunLike(Protocol):
    """One engine run as :class:`~bot.running.engine_host.EngineHost` and its supervisor use it: a local process
    (:class:`EngineRun`) or an engine on another host (``bot.running.ray_engine.RayEngineRun``). Its reader thread
    hands every message to the owner's callback, then ``None`` once the engine is gone."""

    pid: int | str | None
    """What the log names the engine by: a process id, or where a remote engine runs."""
    ready: EngineReady | None
    fatal: str | None
    killed: bool
    stopping: bool
    ready_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[EngineReady]]]
    starting: EngineStarting | None
    start_wakers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]
    start_logged_at: float
    exited: threading.Event
    gone: threading.Event
    reader: threading.Thread

    @property
    def alive(self) -> bool: ...

    def send(self, message: object) -> None:
        """Raises OSError or ValueError when the engine cannot be reached (it is dead)."""

    def exit_code(self) -> int | None:
        """The engine's exit code once it is gone; None when it is unknown (a host that vanished)."""

    def kill(self) -> None:
        """End the engine now, without waiting for it."""


class RunState:
    """What a run said about itself and who waits on it: the part of a run its owner reads and writes under its
    own lock, whatever carries the messages."""

    def __init__(self) -> None:
        self.pid: int | str | None = None
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


class EngineRun(RunState):
    """One engine process, the thread that reads from it, and what that process said about itself."""

    def __init__(self, config: EngineConfig, on_message: Callable[[Any, FromEngine | None], None]) -> None:
        super().__init__()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        self.conn: Connection = parent
        self.process: BaseProcess = context.Process(
            target=run_engine, args=(child, config), name="imagine-engine", daemon=True
        )
        with children_ignore_sigint():  # Ctrl-C reaches the engine too: the bot stops it (run_engine ignores it)
            self.process.start()
        child.close()
        self.pid = self.process.pid
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

    def kill(self) -> None:
        """SIGKILL the process; it is not reaped before the reader thread sees the pipe close, so the pid is still
        its own. Raises OSError or ValueError when it is already gone."""
        self.process.kill()


def resolve_future(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    *,
    result: Any = None,
    error: BaseException | None = None,
) -> None:
    """Settle ``future`` on its own ``loop`` from any thread, with ``result`` or ``error``; nothing when it is already
    settled or the loop is closed."""

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
