"""What the engine pool's tests share: which engine each job went to, a running service on given engines, waiting
for jobs to end."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any

from bot.application.service import ImagineService
from bot.events import JobEvent
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from engine.protocol import RenderTask
from tests.conftest import ENGINE_TIMEOUT_S


class SentTo:
    """Which engine each job was handed to, in order (an attempt per hand-over)."""

    def __init__(self, engines: Sequence[EngineSupervisor]) -> None:
        self.engines = list(engines)
        self.by_job: dict[int, list[int]] = defaultdict(list)
        for index, engine in enumerate(self.engines):
            self.watch(index, engine)

    def watch(self, index: int, engine: EngineSupervisor) -> None:
        """Record what ``engine`` (number ``index``) is handed from now on."""
        if engine not in self.engines:
            self.engines.append(engine)
        original = engine.send_batch

        async def recorded(tasks: Sequence[RenderTask], *args: Any, **kwargs: Any) -> Any:
            for task in tasks:
                self.by_job[task.job_id].append(index)
            return await original(tasks, *args, **kwargs)

        engine.send_batch = recorded  # type: ignore[method-assign]

    def restore(self) -> None:
        for engine in self.engines:
            engine.__dict__.pop("send_batch", None)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, engines: Sequence[EngineSupervisor]
) -> AsyncIterator[tuple[ImagineService, SentTo, list[JobEvent]]]:
    """A started service whose pool runs on ``engines`` (left running), what each was handed, and every event."""
    sent = SentTo(engines)
    service = await ImagineService.open(settings, engine=list(engines))
    events: list[JobEvent] = []
    service.events.subscribe(events.append)
    service.start()
    try:
        yield service, sent, events
    finally:
        await service.close()
        sent.restore()


async def until_ended(service: ImagineService, job_ids: Sequence[int], limit_s: float = ENGINE_TIMEOUT_S) -> None:
    """Wait until every job of ``job_ids`` is completed, failed or cancelled (the database says)."""
    async with asyncio.timeout(limit_s):
        while True:
            jobs = [await service.scheduler.get(job_id) for job_id in job_ids]
            if all(job.status.terminal for job in jobs):
                return
            await asyncio.sleep(0.05)
