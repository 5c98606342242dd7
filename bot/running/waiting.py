"""Waits on input from outside the bot: the engine process, a member's next job.

Long idle waits go through an :data:`ExternalWait` so a host that drives the event loop (a test harness such as
simcord, which settles the loop after each simulated action) can tell "idle, waiting for outside input" apart
from "stuck". In production it is :func:`passthrough`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

ExternalWait = Callable[..., Awaitable[Any]]
"""``await external_wait(awaitable, reason="...")`` returns what the awaitable returns."""


async def passthrough(awaitable: Awaitable[T], *, reason: str) -> T:
    """Await ``awaitable``; ``reason`` documents the wait."""
    return await awaitable
