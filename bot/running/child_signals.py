"""Starting child processes (the engine, a model download) so that Ctrl-C stops them in order, not on their own."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Child processes started inside this block ignore SIGINT from their first instruction.

    Ctrl-C in a terminal reaches every process of the foreground group: a child would print its own traceback and
    stop on its own, while the command that started it means to stop it in order (cancel, ask it to exit, kill it
    if it must). An ignored signal stays ignored across ``exec``, and a new Python leaves it so; the command
    ignores SIGINT only for the moment it starts the child (a Ctrl-C in those few milliseconds is lost). Only the
    main thread may change a handler: from another thread, children start as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # a handler installed outside Python: leave it alone
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
