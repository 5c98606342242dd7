"""A job's life around the engine process, through the service and worker: its lease while the engine loads a
model, a cancel while the engine restarts, and what the worker says while the engine cannot start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.events import EventKind, JobEvent
from bot.jobs import Origin, Status
from bot.running import worker as worker_module
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from engine.protocol import RenderTask
from tests.conftest import ENGINE_TIMEOUT_S, make_settings, submit_prompt
from tests.engine.rendering import render_one

pytestmark = pytest.mark.slow

MEMBER = Actor(42, Origin(source="cli"))
"""A paying member (the console itself renders for free, so it could not show a refund)."""


@pytest.fixture
async def service(settings: Settings, engine: EngineSupervisor) -> AsyncIterator[ImagineService]:
    opened = await ImagineService.open(settings, engine=engine)
    yield opened
    await opened.close()


async def _until(condition: Callable[[], bool], what: str, limit_s: float = ENGINE_TIMEOUT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def lease_sweeper(service: ImagineService, every_s: float = 0.1) -> AsyncIterator[list[int]]:
    """Run the lease sweep every ``every_s`` while the block runs; yields the ids it took back."""
    taken_back: list[int] = []
    sweeping = True

    async def sweep() -> None:
        while sweeping:
            taken_back.extend(await service.scheduler.expire_leases())
            await asyncio.sleep(every_s)

    sweeper = asyncio.create_task(sweep())
    try:
        yield taken_back
    finally:
        sweeping = False
        await sweeper


def _of(events: list[JobEvent], job_id: int, kind: EventKind) -> list[JobEvent]:
    return [event for event in events if event.job.id == job_id and event.kind is kind]


async def test_a_job_keeps_its_lease_while_the_engine_loads_its_model(
    engine: EngineSupervisor, data_dir: Path, tmp_path: Path
) -> None:
    """A 0.5 s lease swept every 0.1 s and a model that takes longer to load: done on the first attempt, once."""
    settings = make_settings(data_dir, database_path=tmp_path / "imagine.db", scheduler={"lease_s": 0.5})
    warm_up = RenderTask(990, "a fox", "", 64, 64, 2, 5.0, (1,), "euler", str(data_dir / "images" / "warm-up"))
    await render_one(engine, warm_up)  # the start-up model is loaded, so tiny-sdxl loads when the job asks for it
    service = await ImagineService.open(settings, engine=engine)
    events: list[JobEvent] = []
    service.events.subscribe(events.append)
    try:
        async with lease_sweeper(service) as taken_back:
            submitted = await submit_prompt(service, MEMBER, "a fox --model tiny-sdxl")
            await asyncio.wait_for(service.worker.run_until_idle(), ENGINE_TIMEOUT_S)
            job = await service.scheduler.get(submitted.job.id)
    finally:
        await service.close()
    assert taken_back == []
    assert job.status is Status.COMPLETED, job.error
    assert job.attempts == 1
    assert len(_of(events, job.id, EventKind.STARTED)) == 1
    assert [event.step for event in _of(events, job.id, EventKind.PROGRESS)].count(1) == 1  # rendered once


async def test_a_job_keeps_its_lease_while_it_waits_in_the_engine_behind_another(
    engine: EngineSupervisor, data_dir: Path, tmp_path: Path
) -> None:
    """Two jobs dispatched together to an engine that renders one per call: the second waits in the engine with no
    step of its own, then the first waits for the batch to end before it is recorded, each longer than the 0.5 s
    lease; both complete on their first attempt, in one dispatch."""
    settings = make_settings(
        data_dir, database_path=tmp_path / "imagine.db", scheduler={"lease_s": 0.5, "max_batch": 2}
    )
    service = await ImagineService.open(settings, engine=engine)
    try:
        async with lease_sweeper(service) as taken_back:
            # 12 steps of a 4-image grid: about 1.4 s each, almost three leases
            first = await submit_prompt(service, Actor(41, Origin(source="cli")), "a fox --steps 12 --seed 1")
            second = await submit_prompt(service, MEMBER, "a cat --steps 12 --seed 2")
            await asyncio.wait_for(service.worker.run_until_idle(), ENGINE_TIMEOUT_S)
            jobs = [await service.scheduler.get(submitted.job.id) for submitted in (first, second)]
    finally:
        await service.close()
    assert taken_back == []
    assert [job.status for job in jobs] == [Status.COMPLETED, Status.COMPLETED]
    assert [job.attempts for job in jobs] == [1, 1]
    assert jobs[0].started_at == jobs[1].started_at  # handed to the engine as one batch


async def test_a_job_cancelled_while_the_engine_restarts_is_never_rendered(
    service: ImagineService, engine: EngineSupervisor, settings: Settings
) -> None:
    """SIGKILL mid-render, cancel while a fresh engine starts: no image, no progress after the cancel, one refund."""
    await engine.wait_ready()
    events: list[JobEvent] = []
    killed: list[int] = []

    def on_event(event: JobEvent) -> None:
        events.append(event)
        if event.kind is EventKind.PROGRESS and not killed:
            killed.append(event.job.id)
            engine.kill()

    service.events.subscribe(on_event)
    started = time.time()  # the module's tests share images/ and number their jobs alike: judge by time
    submitted = await submit_prompt(service, MEMBER, "a fox --steps 40")
    job_id = submitted.job.id
    assert submitted.cost > 0
    service.start()
    await _until(lambda: bool(_of(events, job_id, EventKind.REQUEUED)), "the crash to requeue the job")
    await asyncio.sleep(0.3)
    assert killed == [job_id]
    assert not engine.alive or engine.ready is None  # restarting: the crash backoff, then loading its model
    await service.cancel(job_id, "member")
    cancelled_at = len(events)
    later = await submit_prompt(service, MEMBER, "a cat")  # the worker reaches it only after anything before it

    def settled() -> bool:
        rendered_again = _of(events[cancelled_at:], job_id, EventKind.PROGRESS)
        return bool(rendered_again or _of(events, later.job.id, EventKind.COMPLETED))

    await _until(settled, "the next job to complete")
    job = await service.scheduler.get(job_id)
    refunds = await service.store.fetch_value(
        "SELECT COUNT(*) FROM ledger WHERE job_id = ? AND kind = 'refund'", (job_id,)
    )
    assert job.status is Status.CANCELLED
    assert not _of(events[cancelled_at:], job_id, EventKind.PROGRESS)
    assert not [path for path in (settings.images_dir / str(job_id)).glob("*.png") if path.stat().st_mtime >= started]
    assert refunds == 1
    assert job.attempts == 1  # never dispatched again


async def test_an_engine_that_cannot_start_is_reported_once_per_try(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub model with no network: one error line per try, naming the model, with the backoff doubling."""
    monkeypatch.setattr(worker_module, "ENGINE_RETRY_FIRST_S", 0.2)
    settings = make_settings(
        data_dir,
        database_path=tmp_path / "imagine.db",
        model="absent",
        models={"absent": {"source": "imaginebot-tests/absent-model"}},
        engine_start_timeout_s=ENGINE_TIMEOUT_S,
    )
    caplog.set_level(logging.INFO)
    service = await ImagineService.open(settings)

    def said() -> list[logging.LogRecord]:
        return [record for record in caplog.records if "imaginebot-tests/absent-model" in record.getMessage()]

    try:
        service.start()
        await _until(lambda: len(said()) >= 2, "two tries to start the engine")
    finally:
        await service.close()
    first, second = said()[:2]
    assert (first.name, first.levelno) == ("bot.running.worker", logging.ERROR)
    assert (second.name, second.levelno) == ("bot.running.worker", logging.ERROR)
    assert "the engine cannot start (queued jobs wait; next try in 0.2 s): model 'absent'" in first.getMessage()
    assert "next try in 0.4 s" in second.getMessage()
