"""Stopping a command on Ctrl-C (SIGINT) or SIGTERM: promptly, in one line, exit 130, nothing left half-done.

A terminal sends Ctrl-C to its whole foreground process group: the command and the engine process it started both
receive it. The engine ignores SIGINT and is stopped by the command (see :mod:`bot.running.engine_supervisor`), so only
the command decides what an interruption means.

asyncio's own handling of SIGINT cancels the main task wherever it waits (also halfway through opening or closing
the database) and turns a second SIGINT into a KeyboardInterrupt raised from inside the event loop; either can
leave an aiosqlite connection open, whose thread then keeps the interpreter from exiting until yet another Ctrl-C.
:class:`StopSignals` replaces that: the first signal cancels only the wait that is safe to cut short
(:meth:`StopSignals.interruptible`) and is remembered for the next :meth:`StopSignals.check`; clean-up always runs
to its end, and a repeated signal only hurries it (``on_repeat``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

EXIT_INTERRUPTED = 130
"""The shell's convention for a command stopped by Ctrl-C (128 + SIGINT)."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class CommandInterruptedError(Exception):
    """The command was stopped by SIGINT or SIGTERM."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name


class StopSignals:
    """SIGINT and SIGTERM while a command's event loop runs. Use as ``with StopSignals(loop) as stop:``.

    The first signal is remembered (:attr:`signal_name`) and cancels the awaitable that :meth:`interruptible`
    runs, if one runs; :meth:`check` raises :class:`CommandInterruptedError` once a signal came. Any later signal
    calls ``on_repeat`` (to hurry the clean-up) and never cuts it short.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, on_repeat: Callable[[], None] | None = None) -> None:
        self.loop = loop
        self.on_repeat = on_repeat
        self.signal_name: str | None = None
        self._guarded: asyncio.Future[Any] | None = None
        self._installed: list[tuple[signal.Signals, Any]] = []
        """Each signal handled here, with the handler it had before."""

    def __enter__(self) -> StopSignals:
        for number in STOP_SIGNALS:
            previous = signal.getsignal(number)
            try:
                self.loop.add_signal_handler(number, self._on_signal, number)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no Unix signals
                continue
            self._installed.append((number, previous))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, previous in self._installed:
            with contextlib.suppress(Exception):
                self.loop.remove_signal_handler(number)
                if previous is not None:  # asyncio leaves the default action; put back what was there
                    signal.signal(number, previous)
        self._installed.clear()

    @property
    def stopped(self) -> bool:
        return self.signal_name is not None

    def _on_signal(self, number: signal.Signals) -> None:
        if self.signal_name is not None:
            if self.on_repeat is not None:
                self.on_repeat()
            return
        self.signal_name = signal.Signals(number).name
        if self._guarded is not None and not self._guarded.done():
            self._guarded.cancel()

    def check(self) -> None:
        """Raise :class:`CommandInterruptedError` if a stop signal came."""
        if self.signal_name is not None:
            raise CommandInterruptedError(self.signal_name)

    async def interruptible(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` in a task of its own; a stop signal cancels it and raises
        :class:`CommandInterruptedError`.

        Only waits that may be cut anywhere belong here (the engine loading or rendering): not opening or closing
        the database, and no write whose outcome the caller needs."""
        self.check()
        task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
        self._guarded = task
        try:
            return await task
        except asyncio.CancelledError:
            if self.signal_name is None or not task.cancelled():
                raise  # the caller itself was cancelled
            raise CommandInterruptedError(self.signal_name) from None
        finally:
            self._guarded = None
            if not task.done():  # the caller was cancelled: do not leave the work running
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


@contextlib.contextmanager
def terminate_as_interrupt(enabled: bool = True) -> Iterator[None]:
    """SIGTERM does what Ctrl-C does: Python raises KeyboardInterrupt in the main thread, so a stopped command ends
    the same way either way. A command that runs an event loop installs :class:`StopSignals` over it, which takes
    both signals while the loop runs. ``enabled`` False: nothing changes (``run`` has its own way to stop)."""

    def on_terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if not enabled:
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, on_terminate)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_interruptible(main: Coroutine[Any, Any, int]) -> int:
    """``asyncio.run(main)`` for a command that may be cut short anywhere (its own ``finally`` clean-up runs): the
    first SIGINT or SIGTERM cancels it, and it ends with the one ``interrupted`` line and exit 130."""

    async def guarded() -> int:
        with StopSignals(asyncio.get_running_loop()) as stop:
            return await stop.interruptible(main)

    try:
        return asyncio.run(guarded())
    except CommandInterruptedError:
        return say_interrupted()


def exit_at_once_on_stop_signal(code: int) -> None:
    """The command has ended with ``code``; only the interpreter's own exit is left (joining threads, atexit
    handlers). A stop signal now (a second Ctrl-C) ends the process at once with that same code, instead of a
    KeyboardInterrupt traceback from inside the exit or SIGTERM's default death."""

    def exit_now(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # it may be in the middle of a write
                stream.flush()
        os._exit(code)

    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        for number in STOP_SIGNALS:
            signal.signal(number, exit_now)


def say_interrupted(line: str = "interrupted") -> int:
    """Print the one line an interrupted command ends with; the exit code to return."""
    print(line, file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED
