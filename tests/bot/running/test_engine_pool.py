"""Two engine processes fed by one queue: jobs spread over both, a job whose engine is SIGKILLed finishes on the
other, and jobs go to the engine that already holds their model."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.events import EventKind, JobEvent
from bot.jobs import Origin, Status
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from engine.protocol import RenderTask
from tests.conftest import ENGINE_TIMEOUT_S, make_settings, submit_prompt

pytestmark = pytest.mark.slow

MEMBER = Actor(4242, Origin(source="cli"))


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pool")


@pytest.fixture(scope="module")
def two_engines(pool_dir: Path) -> Iterator[list[EngineSupervisor]]:
    """Two fresh engine processes on the tiny model (the module's own: the session's engine keeps its state)."""
    config = engine_config(make_settings(pool_dir, engine={"devices": ["cpu", "cpu"]}))
    engines = [EngineSupervisor(config, start_timeout_s=ENGINE_TIMEOUT_S) for _ in range(2)]
    for engine in engines:
        engine.spawn()
    yield engines
    for engine in engines:
        engine.stop()


class SentTo:
    """Which engine each job was handed to, in order (an attempt per hand-over)."""

    def __init__(self, engines: Sequence[EngineSupervisor]) -> None:
        self.engines = list(engines)
        self.by_job: dict[int, list[int]] = defaultdict(list)
        self._originals: list[Any] = []
        for index, engine in enumerate(self.engines):
            original = engine.send_batch
            self._originals.append(original)

            async def recorded(
                tasks: Sequence[RenderTask], *args: Any, _index: int = index, _original: Any = original, **kwargs: Any
            ) -> Any:
                for task in tasks:
                    self.by_job[task.job_id].append(_index)
                return await _original(tasks, *args, **kwargs)

            engine.send_batch = recorded  # type: ignore[method-assign]

    def restore(self) -> None:
        for engine in self.engines:
            del engine.send_batch


@pytest.fixture
async def pool(
    pool_dir: Path, two_engines: list[EngineSupervisor], tmp_path: Path
) -> AsyncIterator[tuple[ImagineService, SentTo, list[JobEvent]]]:
    settings: Settings = make_settings(
        pool_dir,
        database_path=tmp_path / "imagine.db",
        enabled_models=["tiny-sdxl"],
        engine={"devices": ["cpu", "cpu"]},
    )
    sent = SentTo(two_engines)
    service = await ImagineService.open(settings, engine=two_engines)
    events: list[JobEvent] = []
    service.events.subscribe(events.append)
    service.start()
    try:
        yield service, sent, events
    finally:
        await service.close()
        sent.restore()


async def _until_ended(service: ImagineService, job_ids: Sequence[int], limit_s: float = ENGINE_TIMEOUT_S) -> None:
    async with asyncio.timeout(limit_s):
        while True:
            jobs = [await service.scheduler.get(job_id) for job_id in job_ids]
            if all(job.status.terminal for job in jobs):
                return
            await asyncio.sleep(0.05)


async def _ledger_kinds(service: ImagineService, job_id: int) -> list[str]:
    rows = await service.store.fetch_all("SELECT kind FROM ledger WHERE job_id = ? ORDER BY id", (job_id,))
    return [row["kind"] for row in rows]


async def test_jobs_go_to_the_engine_that_holds_their_model(
    pool: tuple[ImagineService, SentTo, list[JobEvent]],
) -> None:
    """An engine that rendered tiny-sdxl gets the next tiny-sdxl job, the other the tiny one queued before it."""
    service, sent, _ = pool
    assert service.scheduler.engines == 2
    first = await submit_prompt(service, MEMBER, "a lighthouse --model tiny-sdxl")
    await _until_ended(service, [first.job.id])
    holder = sent.by_job[first.job.id][-1]
    assert service.engines.engines[holder].loaded_models == {"tiny-sdxl"}
    other = 1 - holder
    assert service.engines.engines[other].loaded_models == {"tiny"}

    plain = await service.prepare(MEMBER, "a harbour")
    sdxl = await service.prepare(MEMBER, "a harbour at night --model tiny-sdxl")
    admitted = await service.submit(MEMBER, [*plain[:1], *sdxl[:1]])  # one transaction: both wait at once
    plain_id, sdxl_id = (item.job.id for item in admitted.jobs)
    await _until_ended(service, [plain_id, sdxl_id])
    assert sent.by_job[sdxl_id] == [holder]
    assert sent.by_job[plain_id] == [other]
    assert [(await service.scheduler.get(job_id)).status for job_id in (plain_id, sdxl_id)] == [Status.COMPLETED] * 2


async def test_jobs_spread_over_both_engines(pool: tuple[ImagineService, SentTo, list[JobEvent]]) -> None:
    """Six members' jobs queued together: both engines render some, each job once, each charged once."""
    service, sent, _ = pool
    members = [Actor(5000 + n, Origin(source="cli")) for n in range(6)]
    job_ids = [(await submit_prompt(service, member, "a fox --steps 12")).job.id for member in members]
    await _until_ended(service, job_ids)
    assert [(await service.scheduler.get(job_id)).status for job_id in job_ids] == [Status.COMPLETED] * len(job_ids)
    engines_used = {sent.by_job[job_id][0] for job_id in job_ids}
    assert engines_used == {0, 1}, dict(sent.by_job)
    assert all(len(sent.by_job[job_id]) == 1 for job_id in job_ids)
    assert [await _ledger_kinds(service, job_id) for job_id in job_ids] == [["debit"]] * len(job_ids)


async def test_a_job_whose_engine_is_killed_finishes_on_the_other(
    pool: tuple[ImagineService, SentTo, list[JobEvent]],
) -> None:
    """SIGKILL the engine rendering a job: the job is given back and completes on the other engine, charged once,
    and the killed engine comes back by itself."""
    service, sent, events = pool
    rendering = asyncio.Event()
    service.events.subscribe(lambda event: rendering.set() if event.kind is EventKind.PROGRESS else None)
    submitted = await submit_prompt(service, MEMBER, "a slow fox --steps 60")
    job_id = submitted.job.id
    await asyncio.wait_for(rendering.wait(), ENGINE_TIMEOUT_S)
    victim = sent.by_job[job_id][0]
    pid = service.engines.engines[victim].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await _until_ended(service, [job_id])
    job = await service.scheduler.get(job_id)
    assert job.status is Status.COMPLETED and job.attempts == 2
    assert sent.by_job[job_id] == [victim, 1 - victim]
    assert [event.kind for event in events if event.job.id == job_id and event.kind is EventKind.REQUEUED] == [
        EventKind.REQUEUED
    ]
    assert await _ledger_kinds(service, job_id) == ["debit"]  # charged once, never refunded
    await asyncio.wait_for(service.engines.engines[victim].wait_ready(), ENGINE_TIMEOUT_S)
    assert service.engines.engines[victim].restarts >= 1
