"""Job events for web clients: one subscription to the core's event bus, fanned out by job id.

Each watcher gets its own bounded buffer: a slow client never slows the worker or other clients. Progress events
are coalesced (a watcher that lags sees the newest step, not every step); the end of a job (completed, failed,
cancelled) is never dropped. The feed also keeps each running job's latest progress and preview, for A1111's
``/progress`` and for a client that connects mid-render.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from bot.core import EventKind, JobEvent

BUFFER = 32
"""Events one watcher may have waiting; beyond it the oldest progress events are dropped."""
ENDS = frozenset({EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED})


@dataclass(frozen=True)
class Latest:
    """A running job's newest progress."""

    job_id: int
    user_id: int
    step: int
    total: int
    preview: bytes | None
    started_at: float
    at: float

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


class Watcher:
    """The events of one job for one client, in order (see the module's note on coalescing)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._events: deque[JobEvent] = deque()
        self._ready = asyncio.Event()

    def put(self, event: JobEvent) -> None:
        if event.kind is EventKind.PROGRESS and self._events and self._events[-1].kind is EventKind.PROGRESS:
            self._events[-1] = event
        else:
            self._events.append(event)
        while len(self._events) > BUFFER:
            index = next((i for i, item in enumerate(self._events) if item.kind not in ENDS), None)
            if index is None:
                break
            del self._events[index]
        self._ready.set()

    async def next(self, timeout_s: float | None = None) -> JobEvent | None:
        """The next event; None when ``timeout_s`` passed without one."""
        while not self._events:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout_s)
            except TimeoutError:
                return None
        return self._events.popleft()


class JobFeed:
    """The web's view of job events. :meth:`attach` to a service's event bus once; :meth:`close` to detach."""

    def __init__(self) -> None:
        self._watchers: dict[int, set[Watcher]] = {}
        self._latest: dict[int, Latest] = {}
        self._started: dict[int, float] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, subscribe: Callable[[Callable[[JobEvent], None]], Callable[[], None]]) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = subscribe(self.publish)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def watchers(self) -> int:
        """Clients watching a job now."""
        return sum(len(items) for items in self._watchers.values())

    def publish(self, event: JobEvent) -> None:
        """Take one event from the bus (never blocks)."""
        job = event.job
        if event.kind is EventKind.STARTED:
            self._started[job.id] = time.time()
        elif event.kind is EventKind.PROGRESS:
            previous = self._latest.get(job.id)
            preview = event.preview if event.preview is not None else (previous.preview if previous else None)
            self._latest[job.id] = Latest(
                job.id,
                job.user_id,
                event.step,
                event.total,
                preview,
                self._started.get(job.id, time.time()),
                time.time(),
            )
        elif event.kind in ENDS or event.kind is EventKind.REQUEUED:
            self._latest.pop(job.id, None)
            if event.kind in ENDS:
                self._started.pop(job.id, None)
        for watcher in tuple(self._watchers.get(job.id, ())):
            watcher.put(event)

    def latest(self, job_id: int) -> Latest | None:
        return self._latest.get(job_id)

    def latest_of_member(self, user_id: int) -> Latest | None:
        """The member's running job with the newest progress."""
        mine = [item for item in self._latest.values() if item.user_id == user_id]
        return max(mine, key=lambda item: item.at) if mine else None

    def started_at(self, job_id: int) -> float | None:
        return self._started.get(job_id)

    @contextlib.asynccontextmanager
    async def watch(self, job_id: int) -> AsyncIterator[Watcher]:
        """Watch one job's events from now on (read the job's state after entering, so nothing falls between)."""
        watcher = Watcher(job_id)
        self._watchers.setdefault(job_id, set()).add(watcher)
        try:
            yield watcher
        finally:
            watchers = self._watchers.get(job_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[job_id]
