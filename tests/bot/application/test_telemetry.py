"""Telemetry: failure reasons and refusal codes, fixed-bucket histograms, counters driven by job events and batches,
the service's refusals and queue, and a real job through a real service and engine."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.application.telemetry import Telemetry
from bot.application.telemetry_rules import FAILURE_REASONS, Histogram, failure_reason, refusal_code
from bot.errors import (
    BannedError,
    DuplicateJobError,
    ImagineError,
    InsufficientCreditsError,
    JobNotFoundError,
    NotModeratorError,
    PromptError,
    QueueLimitError,
    QueuePausedError,
)
from bot.events import EventBus, EventKind, JobEvent
from bot.jobs import Job, Kind, Lane, Origin, RenderParams, Status
from bot.requests.custom_ids import Action
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from engine.memory_advice import load_oom_message, render_oom_message
from engine.protocol import MemoryOptions
from tests.conftest import ENGINE_TIMEOUT_S, make_settings, submit_prompt

MEMBER = Actor(7, Origin(source="cli"))
PARAMS = RenderParams(prompt="a fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)
CREATED = 1_800_000_000.0


class Clock:
    """A monotonic clock the test moves (``clock.now += 2``)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_job(job_id: int, *, kind: Kind = Kind.IMAGINE, cost: int = 4, attempts: int = 0, **changes: object) -> Job:
    """A job as the scheduler returns it (queued unless ``changes`` say otherwise)."""
    job = Job(job_id, 7, kind, Status.QUEUED, Lane.FAST, "a fox", PARAMS, Origin(), CREATED, attempts, cost)
    return dataclasses.replace(job, **changes)


def started(job: Job, *, waited_s: float = 0.0) -> Job:
    """``job`` handed to the engine ``waited_s`` after it was queued (one more attempt)."""
    return dataclasses.replace(
        job, status=Status.RUNNING, attempts=job.attempts + 1, started_at=job.created_at + waited_s
    )


# --- pure rules ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("the engine could not start: model 'sdxl' is not downloaded", "engine_start"),
        ("the engine crashed 3 times on this job; giving up (the engine was killed)", "engine_crash"),
        ("gave up after 3 attempts (interrupted by a restart)", "engine_crash"),
        ("the job took longer than 900 s and was stopped; use fewer steps or a smaller size", "timeout"),
        ("gave up after 3 attempts (the engine stopped reporting progress)", "timeout"),
        ("model 'sdxl' does not fit in GPU memory at fp16", "out_of_memory"),
        ("model 'anime' (org/anime) is not downloaded on this machine", "model_load"),
        ("input image /tmp/a.png is outside /data; the engine reads only there", "bad_input"),
        ("output folder /tmp/out is outside /data", "bad_input"),
        ("the images could not be saved on the bot's host: disk full", "storage"),
        ("RuntimeError: something inside diffusers", "other"),
        ("", "other"),
    ],
)
def test_failure_reason(message: str, reason: str) -> None:
    """Each failure message maps to its reason; anything unknown is "other"."""
    assert failure_reason(message) == reason
    assert reason in FAILURE_REASONS


def test_failure_reason_of_the_engines_memory_lines() -> None:
    """The engine's own out-of-memory lines are out_of_memory; the same line at start-up is an engine start."""
    render = render_oom_message([(4, 1024, 1024)], MemoryOptions(), 1)
    load = load_oom_message("sdxl", 7 * 2**30, 2**30, "float16", MemoryOptions())
    assert failure_reason(render) == "out_of_memory"
    assert failure_reason(load) == "out_of_memory"
    assert failure_reason(f"the engine could not start: {load}") == "engine_start"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InsufficientCreditsError(balance=1, cost=4, relax_offered=True), "insufficient_credits"),
        (QueuePausedError(), "queue_paused"),
        (QueueLimitError(queued=5, limit=5), "queue_limit"),
        (DuplicateJobError(3), "duplicate_job"),
        (BannedError(), "banned"),
        (NotModeratorError(), "not_moderator"),
        (JobNotFoundError(3), "job_not_found"),
        (PromptError("--ar must look like 3:2", flag="--ar"), "prompt"),
        (ImagineError("the image this job started from is no longer kept"), "refused"),
    ],
)
def test_refusal_code(error: ImagineError, code: str) -> None:
    """A refused request's code is its error's class in snake case, without "Error"."""
    assert refusal_code(error) == code


@pytest.mark.parametrize(
    ("values", "counts", "total"),
    [
        ([], (0, 0, 0, 0), 0.0),
        ([0.5], (1, 0, 0, 0), 0.5),
        ([1.0], (1, 0, 0, 0), 1.0),  # a value on a bound falls in that bound's bucket (Prometheus's le)
        ([1.0001, 2.0], (0, 2, 0, 0), 3.0001),
        ([4.9, 5.0, 6.0, 1e9], (0, 0, 2, 2), 1e9 + 15.9),
        ([-1.0, 0.0], (2, 0, 0, 0), -1.0),
    ],
)
def test_histogram_counts_each_value_in_its_bucket(values: list[float], counts: tuple[int, ...], total: float) -> None:
    """Values land in the first bucket whose bound is at least the value; the last one holds the rest."""
    histogram = Histogram((1.0, 2.0, 5.0))
    for value in values:
        histogram = histogram.observe(value)
    assert histogram.counts == counts
    assert histogram.count == len(values)
    assert histogram.sum == pytest.approx(total)


def test_histogram_cumulative_buckets_end_with_infinity() -> None:
    """Cumulative buckets are Prometheus's: non-decreasing, the last (+Inf) holding every value."""
    histogram = Histogram((1.0, 2.0, 5.0))
    for value in (0.5, 1.5, 1.7, 3.0, 9.0):
        histogram = histogram.observe(value)
    assert histogram.cumulative() == ((1.0, 1), (2.0, 3), (5.0, 4), (math.inf, 5))


def test_observe_leaves_the_histogram_it_was_called_on_unchanged() -> None:
    """A histogram in a snapshot never changes afterwards."""
    before = Histogram((1.0,))
    after = before.observe(0.5)
    assert before.count == 0 and before.counts == (0, 0)
    assert after.count == 1 and after.counts == (1, 0)


@pytest.mark.parametrize(
    ("bounds", "counts"),
    [((), ()), ((2.0, 1.0), ()), ((1.0, 1.0), ()), ((1.0, math.inf), ()), ((math.nan,), ()), ((1.0,), (0, 0, 0))],
)
def test_histogram_refuses_bad_bounds(bounds: tuple[float, ...], counts: tuple[int, ...]) -> None:
    """Bounds must be finite and increasing, with one count per bucket plus +Inf."""
    with pytest.raises(ValueError, match=r"bounds|counts"):
        Histogram(bounds, counts)


# --- events and batches --------------------------------------------------------------------------------------


async def test_a_completed_job_counts_its_states_wait_render_and_charge() -> None:
    """Queued, started and completed are counted by kind; wait is from created_at, render from the hand-over."""
    clock = Clock()
    events = EventBus()
    telemetry = Telemetry(clock=clock)
    telemetry.attach(events)
    job = make_job(1, kind=Kind.UPSCALE, cost=3)
    await events.emit(JobEvent(EventKind.QUEUED, job, position=1))
    running = started(job, waited_s=12.0)
    await events.emit(JobEvent(EventKind.STARTED, running))
    clock.now += 2.5
    await events.emit(JobEvent(EventKind.PROGRESS, running, step=2, total=4))
    await events.emit(JobEvent(EventKind.COMPLETED, dataclasses.replace(running, status=Status.COMPLETED)))
    snapshot = await telemetry.snapshot()
    assert [snapshot.jobs_total(state, "upscale") for state in ("queued", "started", "completed")] == [1, 1, 1]
    assert snapshot.jobs_total("completed", "imagine") == 0
    assert snapshot.jobs_total("failed") == 0
    assert (snapshot.queue_wait.count, snapshot.queue_wait.sum) == (1, 12.0)
    assert (snapshot.render.count, snapshot.render.sum) == (1, 2.5)
    assert (snapshot.credits_charged, snapshot.credits_refunded) == (3, 0)
    assert telemetry.tracked_jobs == 0


@pytest.mark.parametrize(
    ("kind", "message", "refunded", "reason"),
    [
        (EventKind.FAILED, "the job took longer than 900 s and was stopped", 4, "timeout"),
        (EventKind.FAILED, "the engine crashed 3 times on this job; giving up (killed)", 4, "engine_crash"),
        (EventKind.CANCELLED, "cancelled by member 7", 4, None),
        (EventKind.REQUEUED, "the engine was killed", 0, None),
    ],
)
async def test_a_job_that_does_not_complete(kind: EventKind, message: str, refunded: int, reason: str | None) -> None:
    """Failed and cancelled jobs count their refund (their cost); a failure counts its reason; none is rendered."""
    telemetry = Telemetry(clock=Clock())
    job = make_job(2, cost=4)
    telemetry.record(JobEvent(EventKind.QUEUED, job))
    running = started(job)
    telemetry.record(JobEvent(EventKind.STARTED, running))
    telemetry.record(JobEvent(kind, running, message=message))
    snapshot = await telemetry.snapshot()
    assert snapshot.jobs_total(kind.value, "imagine") == 1
    assert (snapshot.credits_charged, snapshot.credits_refunded) == (4, refunded)
    assert snapshot.render.count == 0
    assert sum(item.count for item in snapshot.errors) == (1 if reason else 0)
    if reason is not None:
        assert snapshot.errors_total(reason, "render") == 1
    assert telemetry.tracked_jobs == 0


async def test_a_failure_without_a_message_uses_the_jobs_error() -> None:
    """An event with no message (the lease sweep's) is classified by the error stored on the job."""
    telemetry = Telemetry()
    job = make_job(3, status=Status.FAILED, error="gave up after 3 attempts (the engine stopped reporting progress)")
    telemetry.record(JobEvent(EventKind.FAILED, job))
    assert (await telemetry.snapshot()).errors_total("timeout") == 1


async def test_a_retried_job_is_rendered_from_its_last_hand_over_and_waits_once() -> None:
    """After a requeue, render time counts from the new hand-over; queue wait counts the first start only."""
    clock = Clock()
    telemetry = Telemetry(clock=clock)
    job = make_job(4)
    first = started(job, waited_s=1.0)
    telemetry.record(JobEvent(EventKind.STARTED, first))
    clock.now += 30.0
    telemetry.record(JobEvent(EventKind.REQUEUED, first))
    second = started(first, waited_s=40.0)
    telemetry.record(JobEvent(EventKind.STARTED, second))
    clock.now += 2.0
    telemetry.record(JobEvent(EventKind.COMPLETED, second))
    snapshot = await telemetry.snapshot()
    assert snapshot.jobs_total("started") == 2 and snapshot.jobs_total("requeued") == 1
    assert (snapshot.queue_wait.count, snapshot.queue_wait.sum) == (1, 1.0)
    assert (snapshot.render.count, snapshot.render.sum) == (1, 2.0)


async def test_jobs_awaited_are_bounded() -> None:
    """Beyond ``tracked_jobs`` the oldest hand-over is forgotten; the jobs still kept are rendered as usual."""
    clock = Clock()
    telemetry = Telemetry(clock=clock, tracked_jobs=3)
    jobs = [started(make_job(job_id)) for job_id in range(10, 15)]
    for job in jobs:
        telemetry.record(JobEvent(EventKind.STARTED, job))
    assert telemetry.tracked_jobs == 3
    clock.now += 1.0
    for job in jobs:
        telemetry.record(JobEvent(EventKind.COMPLETED, job))
    snapshot = await telemetry.snapshot()
    assert snapshot.jobs_total("completed") == 5
    assert snapshot.render.count == 3
    assert telemetry.tracked_jobs == 0


async def test_engine_busy_time_is_wall_time_with_a_batch_in_the_engine() -> None:
    """Overlapping batches count once; idle gaps do not count; the ratio is busy time over uptime."""
    clock = Clock()
    telemetry = Telemetry(clock=clock)
    clock.now += 10.0
    telemetry.batch_sent(2)  # busy from 110
    clock.now += 2.0
    telemetry.batch_sent(1)  # prefetched behind the first
    clock.now += 3.0
    telemetry.batch_ended()
    clock.now += 5.0
    telemetry.batch_ended()  # idle from 120
    telemetry.batch_ended()  # an unmatched end changes nothing
    clock.now += 20.0
    telemetry.batch_sent(4)  # busy again from 140, still in the engine at the snapshot
    clock.now += 10.0
    snapshot = await telemetry.snapshot()
    assert snapshot.uptime_s == 50.0
    assert snapshot.engine_busy_s == 20.0
    assert snapshot.engine_busy_ratio == pytest.approx(0.4)
    assert snapshot.batch_size.counts[:4] == (1, 1, 0, 1)
    assert (snapshot.batch_size.count, snapshot.batch_size.sum) == (3, 7.0)


async def test_a_snapshot_without_queue_or_engine() -> None:
    """With nothing to read, the queue and engine fields are empty; every job state and failure reason is there."""
    snapshot = await Telemetry().snapshot()
    assert snapshot.queue_depth == () and snapshot.engine_restarts == 0 and not snapshot.engine_ready
    assert {(item.state, item.kind) for item in snapshot.jobs} == {
        (state, kind.value)
        for state in ("queued", "started", "completed", "failed", "cancelled", "requeued")
        for kind in Kind
    }
    assert {item.reason for item in snapshot.errors} == set(FAILURE_REASONS)


# --- the service -----------------------------------------------------------------------------------------------


@pytest.fixture
async def quiet_service(tmp_path: Path) -> AsyncIterator[ImagineService]:
    """A service whose engine never starts: it queues, charges and refuses, and renders nothing."""
    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path)  # type: ignore[call-arg]
    service = await ImagineService.open(settings, engine=EngineSupervisor(engine_config(settings)))
    yield service
    await service.close()


async def test_the_service_counts_refused_requests_by_code(quiet_service: ImagineService) -> None:
    """prepare, prepare_follow_up and submit count what they refuse, and nothing they accept."""
    service = quiet_service
    with pytest.raises(PromptError):
        await service.prepare(MEMBER, "a fox --ar banana")
    with pytest.raises(JobNotFoundError):
        await service.prepare_follow_up(MEMBER, 999, Action.UPSCALE, 1)
    await service.ledger.set_balance(MEMBER.user_id, 0, actor="mod", reason="test")
    prepared = await service.prepare(MEMBER, "a fox")
    with pytest.raises(InsufficientCreditsError):
        await service.submit(MEMBER, prepared)
    await service.scheduler.pause("mod")
    with pytest.raises(QueuePausedError):
        await service.prepare(MEMBER, "a fox")
    snapshot = await service.telemetry.snapshot()
    refused = {item.reason: item.count for item in snapshot.errors if item.stage == "request"}
    assert refused == {"prompt": 1, "job_not_found": 1, "insufficient_credits": 1, "queue_paused": 1}
    assert snapshot.paused


async def test_the_service_reports_queue_depth_charges_and_refunds(quiet_service: ImagineService) -> None:
    """Queued jobs show per lane and charge their cost; a cancel refunds it and empties the lane."""
    service = quiet_service
    before = await service.telemetry.snapshot()
    assert before.queue_readable and {item.lane: item.queued for item in before.queue_depth} == {
        "turbo": 0,
        "fast": 0,
        "relax": 0,
    }
    turbo = await submit_prompt(service, MEMBER, "a fox --turbo")
    relax = await submit_prompt(service, MEMBER, "a cat --relax")
    queued = await service.telemetry.snapshot()
    assert {item.lane: item.queued for item in queued.queue_depth} == {"turbo": 1, "fast": 0, "relax": 1}
    assert queued.jobs_total("queued", "imagine") == 2
    assert queued.credits_charged == turbo.cost + relax.cost > 0
    await service.member.cancel(MEMBER, turbo.job.id)
    cancelled = await service.telemetry.snapshot()
    assert {item.lane: item.queued for item in cancelled.queue_depth}["turbo"] == 0
    assert cancelled.jobs_total("cancelled") == 1
    assert cancelled.credits_refunded == turbo.cost
    assert await service.ledger.balance(MEMBER.user_id) == 100 - relax.cost
    assert cancelled.engine_restarts == service.engine.restarts and not cancelled.engine_ready


async def test_a_closed_database_leaves_the_queue_unread(tmp_path: Path) -> None:
    """When the database cannot be read, the snapshot says so and still carries the counters."""
    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path)  # type: ignore[call-arg]
    service = await ImagineService.open(settings, engine=EngineSupervisor(engine_config(settings)))
    await submit_prompt(service, MEMBER, "a fox")
    await service.close()
    snapshot = await service.telemetry.snapshot()
    assert not snapshot.queue_readable and snapshot.queue_depth == ()
    assert snapshot.jobs_total("queued") == 1


@pytest.mark.slow
async def test_a_real_job_through_a_real_service(data_dir: Path, tmp_path: Path, engine: EngineSupervisor) -> None:
    """One job rendered by the engine: counted queued, started and completed, charged, rendered in one batch of 1,
    with the engine busy for part of the uptime."""
    settings: Settings = make_settings(data_dir, database_path=tmp_path / "imagine.db")
    service = await ImagineService.open(settings, engine=engine)
    try:
        submitted = await submit_prompt(service, MEMBER, "a fox --steps 4 --seed 3")
        await asyncio.wait_for(service.worker.run_until_idle(), ENGINE_TIMEOUT_S)
        assert (await service.scheduler.get(submitted.job.id)).status is Status.COMPLETED
        snapshot = await service.telemetry.snapshot()
    finally:
        await service.close()
    assert [snapshot.jobs_total(state, "imagine") for state in ("queued", "started", "completed")] == [1, 1, 1]
    assert snapshot.credits_charged == submitted.cost > 0 and snapshot.credits_refunded == 0
    assert snapshot.render.count == 1 and snapshot.render.sum > 0
    assert snapshot.queue_wait.count == 1
    assert (snapshot.batch_size.count, snapshot.batch_size.sum) == (1, 1.0)
    assert 0 < snapshot.engine_busy_s <= snapshot.uptime_s
    assert 0 < snapshot.engine_busy_ratio <= 1
    assert snapshot.engine_ready
