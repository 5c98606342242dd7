"""Two engine processes fed by one queue: jobs spread over both, a job whose engine is SIGKILLed finishes on the
other, and jobs go to the engine that already holds their model."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.events import EventKind, JobEvent
from bot.jobs import Origin, Status
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from tests.bot.running.pool_support import SentTo, serving, until_ended
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
    async with serving(settings, two_engines) as served:
        yield served


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
    await until_ended(service, [first.job.id])
    holder = sent.by_job[first.job.id][-1]
    assert service.engines.engines[holder].loaded_models == {"tiny-sdxl"}
    other = 1 - holder
    assert service.engines.engines[other].loaded_models == {"tiny"}

    plain = await service.prepare(MEMBER, "a harbour")
    sdxl = await service.prepare(MEMBER, "a harbour at night --model tiny-sdxl")
    admitted = await service.submit(MEMBER, [*plain[:1], *sdxl[:1]])  # one transaction: both wait at once
    plain_id, sdxl_id = (item.job.id for item in admitted.jobs)
    await until_ended(service, [plain_id, sdxl_id])
    assert sent.by_job[sdxl_id] == [holder]
    assert sent.by_job[plain_id] == [other]
    assert [(await service.scheduler.get(job_id)).status for job_id in (plain_id, sdxl_id)] == [Status.COMPLETED] * 2


async def test_jobs_spread_over_both_engines(pool: tuple[ImagineService, SentTo, list[JobEvent]]) -> None:
    """Six members' jobs queued together: both engines render some, each job once, each charged once."""
    service, sent, _ = pool
    members = [Actor(5000 + n, Origin(source="cli")) for n in range(6)]
    job_ids = [(await submit_prompt(service, member, "a fox --steps 12")).job.id for member in members]
    await until_ended(service, job_ids)
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
    await until_ended(service, [job_id])
    job = await service.scheduler.get(job_id)
    assert job.status is Status.COMPLETED and job.attempts == 2
    assert sent.by_job[job_id] == [victim, 1 - victim]
    assert [event.kind for event in events if event.job.id == job_id and event.kind is EventKind.REQUEUED] == [
        EventKind.REQUEUED
    ]
    assert await _ledger_kinds(service, job_id) == ["debit"]  # charged once, never refunded
    await asyncio.wait_for(service.engines.engines[victim].wait_ready(), ENGINE_TIMEOUT_S)
    assert service.engines.engines[victim].restarts >= 1
