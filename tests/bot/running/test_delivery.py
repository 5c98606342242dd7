"""Delivery rules and their store: retry or give up, record once, list what waits, upgrade without reposting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.jobs import Kind, Lane, Origin, RenderParams
from bot.operations.db_check import check_database
from bot.requests.preparation import Prepared
from bot.running.delivery import (
    MAX_DELIVERY_ATTEMPTS,
    Deliveries,
    Delivery,
    PostFailure,
    Verdict,
    decide,
    needs_delivery,
)
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store, _statements, load_migrations
from tests.conftest import make_settings

PARAMS = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)
DISCORD = Origin(source="discord", guild_id=1, channel_id=2, interaction_id=3)


@pytest.mark.parametrize(
    ("failure", "attempts", "verdict", "says"),
    [
        (PostFailure(503, 0, "Service Unavailable"), 1, Verdict.RETRY, "503"),
        (PostFailure(500, 0, "oops"), MAX_DELIVERY_ATTEMPTS - 1, Verdict.RETRY, "500"),
        (PostFailure(500, 0, "oops"), MAX_DELIVERY_ATTEMPTS, Verdict.GIVE_UP, f"{MAX_DELIVERY_ATTEMPTS} attempts"),
        (PostFailure(None, 0, "connection reset"), 1, Verdict.RETRY, "no answer from Discord"),
        (PostFailure(429, 0, "rate limited"), 1, Verdict.RETRY, "429"),
        (PostFailure(401, 0, "Unauthorized"), 1, Verdict.RETRY, "401"),
        (PostFailure(404, 10003, "Unknown Channel"), 1, Verdict.GIVE_UP, "gone or forbidden"),
        (PostFailure(403, 50001, "Missing Access"), 1, Verdict.GIVE_UP, "gone or forbidden"),
        (PostFailure(403, 50013, "Missing Permissions"), 1, Verdict.GIVE_UP, "gone or forbidden"),
        (PostFailure(400, 50035, "Invalid Form Body"), 1, Verdict.GIVE_UP, "refuses the post"),
        (PostFailure(413, 40005, "Request entity too large"), 1, Verdict.GIVE_UP, "refuses the post"),
    ],
)
def test_decide(failure: PostFailure, attempts: int, verdict: Verdict, says: str) -> None:
    """Gone, forbidden and refused posts are given up at once; transient failures until the last attempt."""
    decision = decide(failure, attempts)
    assert decision.verdict is verdict
    assert says in decision.reason


@given(
    status=st.one_of(st.none(), st.integers(100, 599)),
    code=st.integers(0, 100_000),
    attempts=st.integers(1, 100),
    limit=st.integers(1, 50),
)
def test_decide_never_retries_past_the_limit(status: int | None, code: int, attempts: int, limit: int) -> None:
    """Whatever Discord answers, a delivery is retried at most ``max_attempts`` times."""
    decision = decide(PostFailure(status, code, "x"), attempts, limit)
    if attempts >= limit:
        assert decision.verdict is Verdict.GIVE_UP
    assert decision.reason


def test_decide_refuses_a_limit_below_one() -> None:
    """A zero limit is a configuration error, named."""
    with pytest.raises(ValueError, match="max_attempts"):
        decide(PostFailure(500), 1, 0)


@pytest.mark.parametrize(
    ("origin", "needed"),
    [(DISCORD, True), (Origin(), True), (Origin(source="cli"), False), (Origin(source="web"), False)],
)
def test_needs_delivery(origin: Origin, needed: bool) -> None:
    """Only Discord jobs are posted to Discord."""
    assert needs_delivery(origin) is needed


async def _store_with_jobs(tmp_path: Path, *origins: Origin) -> tuple[Store, Scheduler, list[int]]:
    settings = make_settings(tmp_path / "data", database_path=tmp_path / "imagine.db")
    store = await Store.open(settings.database_file)
    scheduler = Scheduler(store, settings)
    await scheduler.load()
    prepared = [Prepared(Kind.IMAGINE, "fox", PARAMS)]
    admissions = [await scheduler.admit(1, prepared, origin=origin, lane=Lane.FAST) for origin in origins]
    return store, scheduler, [admission.jobs[0].job.id for admission in admissions]


async def test_a_delivery_is_recorded_once_and_only_for_an_ended_job(tmp_path: Path) -> None:
    """mark_delivered is a conditional UPDATE: the first call wins, later ones and queued jobs do nothing."""
    store, scheduler, (job_id,) = await _store_with_jobs(tmp_path, DISCORD)
    deliveries = Deliveries(store, now=lambda: 1234.0)
    assert await deliveries.mark_delivered(job_id) is False  # still queued
    await scheduler.cancel(job_id, "test")
    assert await deliveries.mark_delivered(job_id) is True
    assert await deliveries.mark_delivered(job_id) is False
    state = await deliveries.state(job_id)
    assert state is not None
    assert (state.delivery, state.delivered_at) == (Delivery.DELIVERED, 1234.0)
    assert await deliveries.pending() == []
    await store.close()


async def test_pending_lists_ended_discord_jobs_only(tmp_path: Path) -> None:
    """Queued jobs, CLI jobs and delivered jobs are not waiting for a post."""
    store, scheduler, (first, second, cli, queued) = await _store_with_jobs(
        tmp_path, DISCORD, DISCORD, Origin(source="cli"), DISCORD
    )
    deliveries = Deliveries(store)
    for job_id in (first, second, cli):
        await scheduler.fail(job_id, "boom")
    await deliveries.mark_delivered(second)
    assert [job.id for job in await deliveries.pending()] == [first]
    assert (await deliveries.state(cli)).delivery is Delivery.ELSEWHERE  # type: ignore[union-attr]
    assert (await deliveries.state(queued)).delivery is Delivery.PENDING  # type: ignore[union-attr]
    assert await deliveries.count(Delivery.PENDING) == 1
    await store.close()


async def test_failed_attempts_are_counted_until_the_delivery_is_given_up(tmp_path: Path) -> None:
    """Server errors keep the job pending until the last attempt; then it is abandoned with the reason."""
    store, scheduler, (job_id,) = await _store_with_jobs(tmp_path, DISCORD)
    deliveries = Deliveries(store, max_attempts=3)
    await scheduler.fail(job_id, "boom")
    verdicts = [(await deliveries.record_failure(job_id, PostFailure(502, 0, "Bad Gateway"))) for _ in range(4)]
    assert [d.verdict if d else None for d in verdicts] == [Verdict.RETRY, Verdict.RETRY, Verdict.GIVE_UP, None]
    state = await deliveries.state(job_id)
    assert state is not None
    assert (state.delivery, state.attempts) == (Delivery.ABANDONED, 3)
    assert "3 attempts failed" in (state.error or "")
    assert await deliveries.pending() == []
    assert await deliveries.mark_delivered(job_id) is False
    await store.close()


async def test_a_gone_channel_is_abandoned_at_once(tmp_path: Path) -> None:
    """Unknown Channel: one attempt, given up; abandon() records a reason for posts that cannot be made."""
    store, scheduler, (gone, no_grid) = await _store_with_jobs(tmp_path, DISCORD, DISCORD)
    deliveries = Deliveries(store)
    for job_id in (gone, no_grid):
        await scheduler.cancel(job_id, "test")
    decision = await deliveries.record_failure(gone, PostFailure(404, 10003, "Unknown Channel"))
    assert decision is not None and decision.verdict is Verdict.GIVE_UP
    assert await deliveries.abandon(no_grid, "the result's grid is missing") is True
    assert await deliveries.abandon(no_grid, "again") is False
    assert await deliveries.count(Delivery.ABANDONED) == 2
    await store.close()
    assert check_database(store.path) == []


async def test_the_upgrade_marks_history_delivered_and_leaves_live_jobs_pending(tmp_path: Path) -> None:
    """A database at version 4: ended jobs count as delivered (no reposts), queued ones wait, CLI ones never do."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        for migration in load_migrations()[:4]:
            for statement in _statements(migration.sql):
                db.execute(statement)
        db.execute("PRAGMA user_version = 4")
        db.execute("INSERT INTO users (user_id, created_at) VALUES (1, 0)")
        for status, origin in [
            ("completed", DISCORD.to_json()),
            ("failed", "{}"),
            ("queued", DISCORD.to_json()),
            ("completed", Origin(source="cli").to_json()),
        ]:
            db.execute(
                "INSERT INTO jobs (user_id, kind, status, lane, prompt, params, origin, created_at, finished_at)"
                " VALUES (1, 'imagine', ?, 'fast', 'fox', ?, ?, 5, ?)",
                (status, PARAMS.to_json(), origin, None if status == "queued" else 9),
            )
    store = await Store.open(path)
    rows = await store.fetch_all("SELECT id, delivery, delivered_at FROM jobs ORDER BY id")
    assert [tuple(row) for row in rows] == [
        (1, "delivered", 9),
        (2, "delivered", 9),
        (3, "pending", None),
        (4, "elsewhere", None),
    ]
    assert await Deliveries(store).pending() == []
    await store.close()


async def test_db_check_names_broken_delivery_rows(tmp_path: Path) -> None:
    """A queued job marked delivered, a delivery without its time, a CLI job waiting, and a pending post past
    its last attempt are reported."""
    store, _scheduler, (queued, cli) = await _store_with_jobs(tmp_path, DISCORD, Origin(source="cli"))
    await store.close()
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE jobs SET delivery = 'delivered' WHERE id = ?", (queued,))
        db.execute("UPDATE jobs SET delivery = 'pending', delivery_attempts = ? WHERE id = ?", (99, cli))
    names = {problem.check for problem in check_database(store.path)}
    assert names == {
        "only a job that ended is delivered or given up",
        "a delivered job has its delivery time, a given-up one its reason",
        "Discord jobs wait for their post, jobs of other surfaces never",
        "a pending post is given up after its last attempt",
    }
