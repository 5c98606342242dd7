"""Job events: what the worker tells the rest of the bot (the Discord presenter, the CLI) as jobs move."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bot.jobs import ImageResult, Job

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"
    REQUEUED = "requeued"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class JobEvent:
    kind: EventKind
    job: Job
    step: int = 0
    total: int = 0
    position: int = 0
    images: tuple[ImageResult, ...] = field(default=())
    message: str = ""
    preview: bytes | None = field(default=None, repr=False)
    """A small latent preview (PROGRESS events, every few steps)."""


Listener = Callable[[JobEvent], Awaitable[None] | None]


class EventBus:
    """Fan job events out to listeners; a failing listener is logged and never stops the worker."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def emit(self, event: JobEvent) -> None:
        for listener in list(self._listeners):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("listener %r failed on %s event of job %s", listener, event.kind, event.job.id)
