"""The pipelined worker: the engine gets the next batch while it renders the current one, and every guarantee of a
job (its lease, its timeout, a cancel, a crash and its retry) holds for the batch that waits behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.events import EventKind, JobEvent
from bot.jobs import Origin, Status
from bot.running.engine_supervisor import EngineSupervisor, SentBatch
from config.settings import Settings
from engine.protocol import EngineConfig
from tests.conftest import ENGINE_TIMEOUT_S, make_settings, submit_prompt

pytestmark = pytest.mark.slow

ALICE = Actor(41, Origin(source="cli"))
BOB = Actor(42, Origin(source="cli"))


@pytest.fixture
async def service(data_dir: Path, tmp_path: Path, engine: EngineSupervisor) -> AsyncIterator[ImagineService]:
    settings: Settings = make_settings(data_dir, database_path=tmp_path / "imagine.db")
    opened = await ImagineService.open(settings, engine=engine)
    yield opened
    await opened.close()


def _kinds(events: list[JobEvent], job_id: int) -> list[EventKind]:
    return [event.kind for event in events if event.job.id == job_id and event.kind is not EventKind.PROGRESS]


def _index(events: list[JobEvent], job_id: int, kind: EventKind) -> int:
    return next(i for i, event in enumerate(events) if event.job.id == job_id and event.kind is kind)


async def test_the_next_batch_reaches_the_engine_before_the_current_one_ends(service: ImagineService) -> None:
    """Two members' jobs: the second is handed to the engine while the first renders, and both complete once."""
    events: list[JobEvent] = []
    service.events.subscribe(events.append)
    first = await submit_prompt(service, ALICE, "a fox --steps 8 --seed 1")
    second = await submit_prompt(service, BOB, "a cat --steps 8 --seed 2")
    await asyncio.wait_for(service.worker.run_until_idle(), ENGINE_TIMEOUT_S)
    one, two = first.job.id, second.job.id
    assert _index(events, two, EventKind.STARTED) < _index(events, one, EventKind.COMPLETED)
    assert _index(events, one, EventKind.COMPLETED) < _index(events, two, EventKind.COMPLETED)
    jobs = [await service.scheduler.get(job_id) for job_id in (one, two)]
    assert [(job.status, job.attempts) for job in jobs] == [(Status.COMPLETED, 1), (Status.COMPLETED, 1)]
    assert jobs[0].started_at != jobs[1].started_at  # two batches, not one


async def test_one_members_next_job_waits_in_the_engine_behind_their_first(service: ImagineService) -> None:
    """A member on a tier that runs one job at a time, with two queued: the second is handed over while the first
    renders (it waits in the engine, it does not render beside it), and both complete once."""
    events: list[JobEvent] = []
    service.events.subscribe(events.append)
    first = await submit_prompt(service, ALICE, "a fox --steps 8 --seed 1")
    second = await submit_prompt(service, ALICE, "a fox --steps 8 --seed 2")
    await asyncio.wait_for(service.worker.run_until_idle(), ENGINE_TIMEOUT_S)
    one, two = first.job.id, second.job.id
    assert _index(events, two, EventKind.STARTED) < _index(events, one, EventKind.COMPLETED)
    first_steps = [i for i, e in enumerate(events) if e.job.id == one and e.kind is EventKind.PROGRESS]
    second_steps = [i for i, e in enumerate(events) if e.job.id == two and e.kind is EventKind.PROGRESS]
    assert max(first_steps) < min(second_steps)  # rendered one after the other
    jobs = [await service.scheduler.get(job_id) for job_id in (one, two)]
    assert [(job.status, job.attempts) for job in jobs] == [(Status.COMPLETED, 1), (Status.COMPLETED, 1)]


async def test_a_job_cancelled_while_it_waits_behind_another_is_never_rendered(service: ImagineService) -> None:
    """Cancelled once it is with the engine but before its turn: no step of it renders, it is refunded, and the
    job ahead of it completes."""
    events: list[JobEvent] = []
    first = await submit_prompt(service, ALICE, "a fox --steps 12 --seed 1")
    second = await submit_prompt(service, BOB, "a cat --steps 12 --seed 2")
    balance = (await service.member.overview(BOB)).balance
    cancelled: list[int] = []

    async def cancel_while_it_waits(event: JobEvent) -> None:
        events.append(event)
        handed_over = any(e.kind is EventKind.STARTED and e.job.id == second.job.id for e in events)
        if event.kind is EventKind.PROGRESS and event.job.id == first.job.id and handed_over and not cancelled:
            cancelled.append(second.job.id)
            await service.member.cancel(BOB, second.job.id)

    service.events.subscribe(cancel_while_it_waits)
    await asyncio.wait_for(service.worker.run_until_idle(), ENGINE_TIMEOUT_S)
    assert cancelled == [second.job.id]
    assert (await service.scheduler.get(first.job.id)).status is Status.COMPLETED
    assert (await service.scheduler.get(second.job.id)).status is Status.CANCELLED
    assert not [event for event in events if event.job.id == second.job.id and event.kind is EventKind.PROGRESS]
    assert (await service.member.overview(BOB)).balance == balance + second.cost


async def test_a_crash_with_two_batches_in_the_engine_retries_both(
    service: ImagineService, engine: EngineSupervisor
) -> None:
    """The engine dies while it renders one batch and holds the next: both jobs are queued again and complete on
    their second attempt, each charged once."""
    events: list[JobEvent] = []
    killed: list[int] = []
    first = await submit_prompt(service, ALICE, "a fox --steps 12 --seed 1")
    second = await submit_prompt(service, BOB, "a cat --steps 12 --seed 2")
    balances = [(await service.member.overview(actor)).balance for actor in (ALICE, BOB)]

    def kill_mid_render(event: JobEvent) -> None:
        events.append(event)
        handed_over = any(e.kind is EventKind.STARTED and e.job.id == second.job.id for e in events)
        if event.kind is EventKind.PROGRESS and event.job.id == first.job.id and handed_over and not killed:
            killed.append(event.job.id)
            engine.kill()

    service.events.subscribe(kill_mid_render)
    await asyncio.wait_for(service.worker.run_until_idle(), ENGINE_TIMEOUT_S)
    assert killed == [first.job.id]
    for submitted in (first, second):
        job = await service.scheduler.get(submitted.job.id)
        assert (job.status, job.attempts) == (Status.COMPLETED, 2), job.error
        assert _kinds(events, job.id) == [EventKind.STARTED, EventKind.REQUEUED, EventKind.STARTED, EventKind.COMPLETED]
    assert [(await service.member.overview(actor)).balance for actor in (ALICE, BOB)] == balances


async def test_a_batch_timeout_counts_from_when_it_can_run(data_dir: Path) -> None:
    """A sent batch's clock starts the first time its time is asked for (when the batch ahead of it has ended),
    and then runs down from the job timeout per task."""
    supervisor = EngineSupervisor(EngineConfig("tiny", "tiny:sd15", "sd15", str(data_dir)), job_timeout_s=30)
    loop = asyncio.get_running_loop()
    futures = {7: loop.create_future(), 8: loop.create_future()}
    sent = SentBatch(supervisor, (), futures, None)
    await asyncio.sleep(0.2)  # waiting behind another batch: not counted
    assert sent.remaining_s() == pytest.approx(60, abs=0.05)
    await asyncio.sleep(0.2)
    assert 0 < sent.remaining_s() < 60  # now it runs down
    assert not sent.done()
    for future in futures.values():
        future.set_result(None)
    assert sent.done()
