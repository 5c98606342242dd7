"""Admission on a real SQLite file with a fake clock: the lane asked for, prices, the order of the checks, bans,
limits, credits charged up front or not at all, duplicate follow-ups, console jobs held from the start, and a burst
of concurrent admissions."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.errors import (
    BannedError,
    DuplicateJobError,
    InsufficientCreditsError,
    LaneNotAllowedError,
    QueueLimitError,
)
from bot.jobs import Kind, Lane, Origin, RenderParams, Status
from bot.requests.preparation import Prepared
from bot.scheduling import ledger
from bot.scheduling.admission import admit_jobs, asked_lane, is_console_job, quote
from bot.scheduling.ledger import Ledger
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.policy import TierSpec
from tests.bot.scheduling.common import NOW, Clock, make, settings_for

# prompt, negative prompt, model, width, height, steps, cfg, seed
PARAMS = RenderParams("fox", "", "tiny", 64, 64, 4, 5.0, 1)
BIG = RenderParams("fox", "", "sd15", 512, 512, 20, 7.0, 1)  # 4 units of work: 4 credits fast, 8 turbo
CONSOLE = Origin(source="cli")


async def put(
    scheduler: Scheduler, user_id: int, lane: Lane | None = Lane.FAST, params: RenderParams = PARAMS, **job: object
) -> int:
    """Admit one imagine job (``job``: more Prepared fields, such as ``kind`` or ``parent_id``); its id."""
    prepared = Prepared(**{"kind": Kind.IMAGINE, "prompt": "fox", "params": params, **job})  # type: ignore[arg-type]
    admission = await scheduler.admit(user_id, [prepared], origin=Origin(), lane=lane)
    return admission.jobs[0].job.id


async def ledger_consistent(store: Store) -> bool:
    bad = await store.fetch_value(
        "SELECT COUNT(*) FROM users u WHERE u.balance != (SELECT COALESCE(SUM(delta), 0) FROM ledger l"
        " WHERE l.user_id = u.user_id)"
    )
    return bad == 0


@pytest.mark.parametrize(
    ("lane", "flags", "expected"),
    [
        (None, [], None),
        (None, [None, None], None),
        (None, [None, Lane.RELAX, Lane.TURBO], Lane.RELAX),
        (Lane.FAST, [Lane.RELAX], Lane.FAST),
        (Lane.TURBO, [], Lane.TURBO),
    ],
)
def test_asked_lane(lane: Lane | None, flags: list[Lane | None], expected: Lane | None) -> None:
    """An explicit lane wins, then the first job's flag; none means the member's default."""
    prepared = [Prepared(Kind.IMAGINE, "fox", PARAMS, lane=flag) for flag in flags]
    assert asked_lane(prepared, lane) is expected


@pytest.mark.parametrize(
    ("model", "kind", "lane", "cost"),
    [
        ("sd15", Kind.IMAGINE, Lane.FAST, 4),
        ("sd15", Kind.IMAGINE, Lane.TURBO, 8),
        ("sd15", Kind.IMAGINE, Lane.RELAX, 0),
        ("double", Kind.IMAGINE, Lane.FAST, 8),
        ("double", Kind.IMAGINE, Lane.TURBO, 16),
        ("not-configured", Kind.IMAGINE, Lane.FAST, 4),
    ],
)
def test_quote(model: str, kind: Kind, lane: Lane, cost: int) -> None:
    """The price follows the work, the lane and the model's multiplier (1 for a model not in the registry)."""
    prepared = Prepared(kind, "fox", replace(BIG, model=model))
    assert quote(settings_for(), prepared, lane) == cost


@pytest.mark.parametrize(
    ("user_id", "origin", "console"),
    [
        (ledger.CONSOLE_USER_ID, CONSOLE, True),
        (ledger.CONSOLE_USER_ID, Origin(), False),
        (ledger.CONSOLE_USER_ID, Origin(source="web"), False),
        (7, CONSOLE, False),
    ],
)
def test_is_console_job(user_id: int, origin: Origin, console: bool) -> None:
    """Only the console's own jobs queued from a shell belong to a generate process."""
    assert is_console_job(user_id, origin) is console


@pytest.mark.parametrize(
    ("tier", "lane", "error"),
    [
        (TierSpec(allowance=100, max_queued=1), Lane.FAST, QueueLimitError),
        (TierSpec(allowance=0), Lane.FAST, InsufficientCreditsError),
        (TierSpec(allowance=100, relax=False), Lane.RELAX, LaneNotAllowedError),
    ],
)
async def test_limits_refuse_without_charging(
    store: Store, clock: Clock, tier: TierSpec, lane: Lane, error: type[Exception]
) -> None:
    """Refusals leave the balance and the queue as they were."""
    scheduler = await make(store, clock, free=tier)
    if error is QueueLimitError:
        await put(scheduler, 1, lane)
    before = await store.fetch_value("SELECT COUNT(*) FROM jobs")
    balance = await Ledger(store, scheduler.settings).balance(1)
    with pytest.raises(error):
        await put(scheduler, 1, lane)
    assert await store.fetch_value("SELECT COUNT(*) FROM jobs") == before
    assert await Ledger(store, scheduler.settings).balance(1) == balance
    assert await ledger_consistent(store)


@pytest.mark.parametrize(
    ("banned", "tier", "lane", "duplicate", "error"),
    [
        (True, TierSpec(allowance=0, relax=False, max_queued=1), Lane.RELAX, True, BannedError),
        (False, TierSpec(allowance=0, relax=False, max_queued=1), Lane.RELAX, True, LaneNotAllowedError),
        (False, TierSpec(allowance=0, max_queued=1), Lane.FAST, True, DuplicateJobError),
        (False, TierSpec(allowance=0, max_queued=1), Lane.FAST, False, QueueLimitError),
        (False, TierSpec(allowance=0, max_queued=5), Lane.FAST, False, InsufficientCreditsError),
    ],
)
async def test_checks_come_in_order(
    store: Store,
    clock: Clock,
    banned: bool,
    tier: TierSpec,
    lane: Lane,
    duplicate: bool,
    error: type[Exception],
) -> None:
    """Several reasons to refuse: ban, then lane, then duplicate, then queue limit, then credits."""
    scheduler = await make(store, clock, free=tier)
    parent = await put(scheduler, 0)  # the console's job, free, whose image member 1 follows up
    follow_up = {"kind": Kind.UPSCALE, "parent_id": parent, "parent_index": 0}
    await Ledger(store, scheduler.settings, now=clock).grant(1, 2, actor="mod", reason="just enough for one")
    await put(scheduler, 1, **follow_up)  # queued (1 credit): the member is at max_queued=1 with 1 credit left
    if banned:
        await Ledger(store, scheduler.settings, now=clock).set_banned(1, True, actor="mod")
    with pytest.raises(error):
        await put(scheduler, 1, lane, BIG, **(follow_up if duplicate else {}))  # BIG costs 4


async def test_insufficient_credits_message_offers_relax(store: Store, clock: Clock) -> None:
    """The message shows balance and cost, and offers relax unless the tier disables it."""
    scheduler = await make(store, clock, free=TierSpec(allowance=3))
    with pytest.raises(InsufficientCreditsError) as caught:
        await put(scheduler, 1, Lane.FAST, BIG)
    assert "costs 4 credits" in str(caught.value) and "balance is 3" in str(caught.value)
    assert "--relax" in str(caught.value)
    no_relax = await make(store, clock, free=TierSpec(allowance=0, relax=False))
    with pytest.raises(InsufficientCreditsError) as caught:
        await put(no_relax, 2)
    assert "--relax" not in str(caught.value)


async def test_banned_member_is_refused(store: Store, clock: Clock) -> None:
    """Banned members cannot queue."""
    scheduler = await make(store, clock)
    await Ledger(store, scheduler.settings, now=clock).set_banned(7, True, actor="mod")
    with pytest.raises(BannedError, match="banned"):
        await put(scheduler, 7)


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        ({}, True),
        ({"parent_index": 1}, False),
        ({"kind": Kind.VARIATION}, False),
        ({"params": replace(PARAMS, upscale_factor=4.0)}, False),
    ],
)
async def test_duplicate_follow_up(store: Store, clock: Clock, change: dict[str, object], refused: bool) -> None:
    """The same follow-up of the same image is refused while the first is active; another one is queued."""
    scheduler = await make(store, clock)
    parent = await put(scheduler, 1)
    first = {"kind": Kind.UPSCALE, "parent_id": parent, "parent_index": 0}
    queued = await put(scheduler, 1, **first)
    if refused:
        with pytest.raises(DuplicateJobError) as caught:
            await put(scheduler, 1, **{**first, **change})
        assert caught.value.job_id == queued
    else:
        await put(scheduler, 1, **{**first, **change})
    await scheduler.cancel(queued, "member")
    await put(scheduler, 1, **first)  # the first ended: the same button works again


async def test_repeat_is_charged_up_front_or_not_at_all(store: Store, clock: Clock) -> None:
    """Several jobs are admitted together: all charged at once, or none queued when the balance is short."""
    scheduler = await make(store, clock, free=TierSpec(allowance=20, max_queued=50))
    request = Prepared(Kind.IMAGINE, "fox", BIG)
    admission = await scheduler.admit(1, [request] * 4, origin=Origin(), lane=Lane.FAST)
    assert admission.cost == 16 and admission.balance == 4 and len(admission.jobs) == 4
    with pytest.raises(InsufficientCreditsError):
        await scheduler.admit(1, [request] * 7, origin=Origin(), lane=Lane.FAST)
    assert await store.fetch_value("SELECT COUNT(*) FROM jobs") == 4
    assert await ledger_consistent(store)


async def test_admit_jobs_returns_what_it_wrote(store: Store) -> None:
    """Run in a write transaction, it inserts the jobs in the lane a flag asked for and debits each one."""
    settings = settings_for()
    prepared = [Prepared(Kind.IMAGINE, "fox", BIG, lane=Lane.TURBO), Prepared(Kind.IMAGINE, "cat", PARAMS)]
    origin = Origin(channel_id=5)
    admission = await store.write(
        lambda db: admit_jobs(db, settings, user_id=3, prepared=prepared, origin=origin, lane=None, now=NOW)
    )
    assert (admission.lane, admission.cost, admission.balance, admission.tier) == (Lane.TURBO, 9, 91, "free")
    jobs = [item.job for item in admission.jobs]
    assert [(job.prompt, job.lane, job.status, job.origin, job.cost) for job in jobs] == [
        ("fox", Lane.TURBO, Status.QUEUED, origin, 8),
        ("cat", Lane.TURBO, Status.QUEUED, origin, 1),  # the least a paid job costs
    ]
    debits = await store.fetch_all("SELECT job_id, delta FROM ledger WHERE kind = 'debit' ORDER BY id")
    assert [tuple(row) for row in debits] == [(job.id, -job.cost) for job in jobs]


@pytest.mark.parametrize(("origin", "held"), [(CONSOLE, True), (Origin(), False)])
async def test_console_jobs_are_held_from_the_start(store: Store, clock: Clock, origin: Origin, held: bool) -> None:
    """A console job is queued with a lease that its generate process renews from then on; the console pays nothing."""
    scheduler = await make(store, clock)
    prepared = [Prepared(Kind.IMAGINE, "fox", BIG)]
    admission = await scheduler.admit(ledger.CONSOLE_USER_ID, prepared, origin=origin, lane=Lane.TURBO)
    job_id = admission.jobs[0].job.id
    lease = await store.fetch_value("SELECT lease_expires_at FROM jobs WHERE id = ?", (job_id,))
    assert lease == (NOW + 60 if held else None)
    assert admission.cost == 0 and (await scheduler.get(job_id)).status is Status.QUEUED
    assert await store.fetch_value("SELECT COUNT(*) FROM ledger WHERE user_id = 0") == 0


async def test_hundred_concurrent_admissions_accept_exactly_five(store: Store, clock: Clock) -> None:
    """Credits for 5 jobs, 100 admissions at once: exactly 5 accepted, the rest refused, nothing negative."""
    scheduler = await make(store, clock, free=TierSpec(allowance=5, max_queued=1000))
    results = await asyncio.gather(*(put(scheduler, 1) for _ in range(100)), return_exceptions=True)
    accepted = [result for result in results if isinstance(result, int)]
    refused = [result for result in results if isinstance(result, InsufficientCreditsError)]
    assert len(accepted) == 5 and len(refused) == 95
    assert await Ledger(store, scheduler.settings).balance(1) == 0
    assert await ledger_consistent(store)
