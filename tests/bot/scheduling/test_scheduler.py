"""The scheduler on a real SQLite file with a fake clock: lanes, fairness, aging, the running limit, pause, leases,
batching, refunds, positions and restarts (admission's checks: tests/bot/scheduling/test_admission.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import (
    JobNotFoundError,
    QueuePausedError,
)
from bot.jobs import Kind, Lane, Origin, RenderParams, Status
from bot.requests.preparation import Prepared
from bot.scheduling.ledger import Ledger
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.policy import TierSpec

PARAMS = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)
BIG = RenderParams(prompt="fox", negative_prompt="", model="sd15", width=512, height=512, steps=20, cfg=7.0, seed=1)


from tests.bot.scheduling.common import Clock, make  # noqa: E402


async def put(scheduler: Scheduler, user_id: int, lane: Lane | None = Lane.FAST, params: RenderParams = PARAMS) -> int:
    admission = await scheduler.admit(user_id, [Prepared(Kind.IMAGINE, "fox", params)], origin=Origin(), lane=lane)
    return admission.jobs[0].job.id


async def run_one(scheduler: Scheduler, clock: Clock, seconds: float = 10.0) -> int:
    """Dispatch one job, let it take ``seconds`` of GPU time, complete it; returns its id."""
    jobs = await scheduler.dispatch(1)
    assert len(jobs) == 1
    clock.now += seconds
    await scheduler.complete(jobs[0].id, [], "/g.png")
    return jobs[0].id


async def ledger_consistent(store: Store) -> bool:
    bad = await store.fetch_value(
        "SELECT COUNT(*) FROM users u WHERE u.balance != (SELECT COALESCE(SUM(delta), 0) FROM ledger l"
        " WHERE l.user_id = u.user_id)"
    )
    return bad == 0


async def test_lane_order(store: Store, clock: Clock) -> None:
    """turbo, then fast, then relax."""
    scheduler = await make(store, clock)
    relax = await put(scheduler, 1, Lane.RELAX)
    fast = await put(scheduler, 2, Lane.FAST)
    turbo = await put(scheduler, 3, Lane.TURBO)
    assert [await run_one(scheduler, clock, 0) for _ in range(3)] == [turbo, fast, relax]


async def test_fairness_least_gpu_time_first(store: Store, clock: Clock) -> None:
    """A member who used the GPU recently waits behind one who did not, even with older jobs."""
    scheduler = await make(store, clock)
    heavy_1 = await put(scheduler, 1)
    heavy_2 = await put(scheduler, 1)
    assert await run_one(scheduler, clock, 100.0) == heavy_1
    light = await put(scheduler, 2)
    assert await run_one(scheduler, clock) == light
    assert await run_one(scheduler, clock) == heavy_2


async def test_usage_window_slides(store: Store, clock: Clock) -> None:
    """GPU time older than the window no longer counts against a member."""
    scheduler = await make(store, clock)
    await put(scheduler, 1)
    await run_one(scheduler, clock, 100.0)
    clock.now += 10.0
    second_light = await put(scheduler, 2)
    await run_one(scheduler, clock, 200.0)  # member 2 is now the heavier one
    one = await put(scheduler, 1)
    two = await put(scheduler, 2)
    assert await run_one(scheduler, clock, 0) == one
    assert second_light < one < two
    clock.now += 3600 + 1  # both uses fall out of the window: the oldest job goes first again
    three = await put(scheduler, 1)
    assert await run_one(scheduler, clock, 0) == two
    assert await run_one(scheduler, clock, 0) == three


async def test_relax_ages_past_fast(store: Store, clock: Clock) -> None:
    """Under a steady fast load, a relax job that waited relax_aging_s runs before the next fast job."""
    scheduler = await make(store, clock)
    relax = await put(scheduler, 9, Lane.RELAX)
    for _ in range(3):
        await put(scheduler, 1)
        await run_one(scheduler, clock, 60.0)
        assert (await scheduler.get(relax)).status is Status.QUEUED
    clock.now += 300
    await put(scheduler, 1)
    assert await run_one(scheduler, clock, 0) == relax


async def test_heavy_relax_users_wait_longer(store: Store, clock: Clock) -> None:
    """Two relax jobs queued together: the member with more recent GPU time ages later."""
    scheduler = await make(store, clock)
    await put(scheduler, 1, Lane.RELAX)
    await run_one(scheduler, clock, 600.0)  # member 1 used one usage unit
    heavy = await put(scheduler, 1, Lane.RELAX)
    light = await put(scheduler, 2, Lane.RELAX)
    await put(scheduler, 3, Lane.FAST)
    clock.now += 301
    assert await run_one(scheduler, clock, 0) == light  # aged, beats fast
    assert (await scheduler.get(heavy)).status is Status.QUEUED
    fast_next = await run_one(scheduler, clock, 0)
    assert fast_next != heavy  # heavy is not aged yet: fast goes first
    assert await run_one(scheduler, clock, 0) == heavy


async def test_max_running_per_member(store: Store, clock: Clock) -> None:
    """A member at their running limit is skipped; others still run."""
    scheduler = await make(store, clock, free=TierSpec(allowance=100, max_running=1, max_queued=10))
    first = await put(scheduler, 1)
    await put(scheduler, 1)
    other = await put(scheduler, 2)
    assert [job.id for job in await scheduler.dispatch(1)] == [first]
    assert [job.id for job in await scheduler.dispatch(1)] == [other]
    assert await scheduler.dispatch(1) == []


async def test_one_more_job_of_a_member_may_wait_behind_the_batch_that_renders(store: Store, clock: Clock) -> None:
    """With a batch in the engine, a member at their running limit may have one job more claimed (it waits in the
    engine), never two."""
    scheduler = await make(store, clock, free=TierSpec(allowance=100, max_running=1, max_queued=10))
    first, second, third = [await put(scheduler, 1) for _ in range(3)]
    assert [job.id for job in await scheduler.dispatch(1)] == [first]
    assert [job.id for job in await scheduler.dispatch(1, behind_another=True)] == [second]
    assert await scheduler.dispatch(1, behind_another=True) == []
    await scheduler.complete(first, [], "/x/grid.jpg")
    assert [job.id for job in await scheduler.dispatch(1, behind_another=True)] == [third]


async def test_pause_keeps_queued_jobs(store: Store, clock: Clock) -> None:
    """Paused: no dispatch and no new jobs; queued ones stay and run after resume (also across a restart)."""
    scheduler = await make(store, clock)
    queued = await put(scheduler, 1)
    await scheduler.pause("mod")
    assert await scheduler.dispatch() == []
    with pytest.raises(QueuePausedError):
        await put(scheduler, 1)
    restarted = await make(store, clock)
    assert restarted.paused
    await restarted.resume("mod")
    assert await run_one(restarted, clock) == queued


async def test_debit_and_refund_once(store: Store, clock: Clock) -> None:
    """A paid job is debited at enqueue and refunded once when it fails; a second ending is refused."""
    scheduler = await make(store, clock)
    ledger = Ledger(store, scheduler.settings, now=clock)
    job_id = await put(scheduler, 1, Lane.TURBO, BIG)
    assert await ledger.balance(1) == 92  # 100 allowance - 8 (4 units, turbo doubles)
    await scheduler.dispatch()
    await scheduler.fail(job_id, "out of memory")
    assert await ledger.balance(1) == 100
    with pytest.raises(JobNotFoundError):
        await scheduler.cancel(job_id, "member")
    kinds = [entry.kind.value for entry in await ledger.entries(1)]
    assert kinds == ["refund", "debit", "refill"]
    assert await ledger_consistent(store)


async def test_cancel_queued_refunds(store: Store, clock: Clock) -> None:
    """Cancelling a queued job refunds it and removes it from the queue."""
    scheduler = await make(store, clock)
    job_id = await put(scheduler, 1)
    cancelled = await scheduler.cancel(job_id, "member")
    assert cancelled.status is Status.CANCELLED
    assert await scheduler.dispatch() == []
    assert await Ledger(store, scheduler.settings).balance(1) == 100


async def test_expired_lease_requeues_then_gives_up(store: Store, clock: Clock) -> None:
    """A lost job goes back to the head of its lane with attempts + 1; after max_attempts it fails and is refunded."""
    scheduler = await make(store, clock)
    lost = await put(scheduler, 1)
    later = await put(scheduler, 2)
    for attempt in range(1, 4):
        jobs = await scheduler.dispatch()
        assert [job.id for job in jobs] == [lost] and jobs[0].attempts == attempt
        clock.now += 30
        assert await scheduler.renew(lost)  # progress keeps the lease
        clock.now += 59
        assert await scheduler.expire_leases() == []
        clock.now += 2
        assert await scheduler.expire_leases() == [lost]
    job = await scheduler.get(lost)
    assert job.status is Status.FAILED and "gave up after 3 attempts" in (job.error or "")
    assert await Ledger(store, scheduler.settings).balance(1) == 100
    assert await run_one(scheduler, clock) == later


async def test_restart_recovers_running_jobs(store: Store, clock: Clock, tmp_path: Path) -> None:
    """Jobs left running by a stopped process come back at the head of their lane."""
    scheduler = await make(store, clock)
    first = await put(scheduler, 1)
    second = await put(scheduler, 2)
    await scheduler.dispatch()
    restarted = Scheduler(store, scheduler.settings, now=clock)
    assert await restarted.load() == [first]
    jobs = await restarted.dispatch()
    assert [(job.id, job.attempts) for job in jobs] == [(first, 2)]
    clock.now += 1
    await restarted.complete(first, [], "/g.png")
    assert await run_one(restarted, clock) == second


async def test_batch_takes_compatible_jobs(store: Store, clock: Clock) -> None:
    """A batch holds only jobs with the same model, kind, size, steps and sampler, in fairness order."""
    scheduler = await make(store, clock)
    a = await put(scheduler, 1)
    await put(scheduler, 2, params=BIG)
    c = await put(scheduler, 3)
    d = await put(scheduler, 4, Lane.RELAX)
    jobs = await scheduler.dispatch(max_batch=4)
    assert [job.id for job in jobs] == [a, c, d]


async def test_position_and_eta(store: Store, clock: Clock) -> None:
    """Position counts earlier lanes and fair turns; the ETA comes from recent job durations."""
    scheduler = await make(store, clock)
    first = await put(scheduler, 1)
    assert scheduler.eta_s(first) is None
    await run_one(scheduler, clock, 20.0)
    a = await put(scheduler, 1)
    b = await put(scheduler, 1)
    c = await put(scheduler, 2)
    t = await put(scheduler, 3, Lane.TURBO)
    assert scheduler.index.position(t) == 1
    assert scheduler.index.position(a) == 3
    assert scheduler.index.position(b) == 4
    assert scheduler.index.position(c) == 3
    assert scheduler.eta_s(b) == pytest.approx(80.0)
