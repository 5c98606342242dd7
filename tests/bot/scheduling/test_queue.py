"""The scheduler as a persistent queue on a real SQLite file: order, completion, and what survives a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.errors import JobNotFoundError
from bot.jobs import ImageResult, Kind, Lane, Origin, RenderParams, Status
from bot.requests.preparation import Prepared
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store, keep_copy_before_upgrade, load_migrations
from config.policy import TierSpec
from config.settings import Settings

PARAMS = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)
SETTINGS = Settings(
    _env_file=None,  # type: ignore[call-arg]
    model="tiny",
    tiers={"free": TierSpec(max_running=10, max_queued=100), "unlimited": TierSpec(unlimited=True)},
)


def JobQueue(store: Store) -> Scheduler:  # noqa: N802 - reads like the class these tests were written for
    """A scheduler whose member tier lets one member run several jobs at once (these tests claim in a row)."""
    return Scheduler(store, SETTINGS)


async def _enqueue(queue: Scheduler, user_id: int = 1, lane: Lane = Lane.FAST) -> int:
    prepared = [Prepared(Kind.IMAGINE, "fox", PARAMS)]
    admission = await queue.admit(user_id, prepared, origin=Origin(channel_id=5), lane=lane)
    return admission.jobs[0].job.id


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    opened = await Store.open(tmp_path / "imagine.db")
    yield opened
    await opened.close()


async def test_schema_is_migrated_and_wal(store: Store) -> None:
    """A new database gets every migration and runs in WAL mode."""
    assert await store.fetch_value("PRAGMA user_version") == len(load_migrations())
    assert (await store.fetch_value("PRAGMA journal_mode")).lower() == "wal"


async def test_lanes_then_age_decide_the_order(store: Store) -> None:
    """turbo before fast before relax; oldest first inside a lane."""
    queue = JobQueue(store)
    relax = await _enqueue(queue, lane=Lane.RELAX)
    fast_1 = await _enqueue(queue, lane=Lane.FAST)
    turbo = await _enqueue(queue, lane=Lane.TURBO)
    fast_2 = await _enqueue(queue, lane=Lane.FAST)
    assert await queue.position(await queue.get(relax)) == 4
    assert await queue.position(await queue.get(fast_2)) == 3
    order = []
    while (job := await queue.claim_next()) is not None:
        assert job.status is Status.RUNNING
        assert job.attempts == 1
        order.append(job.id)
    assert order == [turbo, fast_1, fast_2, relax]


async def test_complete_records_images_once(store: Store) -> None:
    """A completed job lists its images; completing it again is refused."""
    queue = JobQueue(store)
    job_id = await _enqueue(queue)
    await queue.claim_next()
    images = [ImageResult(job_id, index, f"/x/{index}.png", 1 + index, 64, 64) for index in range(4)]
    done = await queue.complete(job_id, images, "/x/grid.png")
    assert done.status is Status.COMPLETED
    assert done.grid_path == "/x/grid.png"
    assert await queue.images(job_id) == images
    with pytest.raises(JobNotFoundError):
        await queue.fail(job_id, "late failure")


async def test_claim_only_some_jobs(store: Store) -> None:
    """The CLI's worker runs only its own jobs, never a live bot's."""
    queue = JobQueue(store)
    theirs = await _enqueue(queue)
    mine = await _enqueue(queue)
    assert await queue.claim_next(only=set()) is None
    claimed = await queue.claim_next(only={mine})
    assert claimed is not None and claimed.id == mine
    assert (await queue.get(theirs)).status is Status.QUEUED


async def test_queued_and_running_jobs_survive_a_restart(tmp_path: Path) -> None:
    """After a restart, queued jobs are still queued and interrupted ones are back at the head of the queue."""
    path = tmp_path / "imagine.db"
    store = await Store.open(path)
    queue = JobQueue(store)
    first = await _enqueue(queue)
    second = await _enqueue(queue)
    third = await _enqueue(queue)
    claimed = await queue.claim_next()
    assert claimed is not None and claimed.id == first
    await store.close()

    reopened = await Store.open(path)
    try:
        queue = JobQueue(reopened)
        assert await queue.load() == [first]
        recovered = await queue.get(first)
        assert recovered.status is Status.QUEUED
        assert recovered.error == "interrupted by a restart"
        order = []
        while (job := await queue.claim_next()) is not None:
            order.append((job.id, job.attempts))
        assert order == [(first, 2), (second, 1), (third, 1)]
    finally:
        await reopened.close()


async def test_requeue_keeps_the_place_in_line(store: Store) -> None:
    """A job given back after an engine crash runs before jobs queued after it."""
    queue = JobQueue(store)
    first = await _enqueue(queue)
    await _enqueue(queue)
    await queue.claim_next()
    requeued = await queue.requeue(first, "engine crashed")
    assert requeued.status is Status.QUEUED
    assert await queue.position(requeued) == 1


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database written by a newer imaginebot is not silently used."""
    path = tmp_path / "imagine.db"
    store = await Store.open(path)
    async with store.transaction() as db:
        await db.execute("PRAGMA user_version = 999")
    await store.close()
    with pytest.raises(RuntimeError, match="newer than this bot knows"):
        await Store.open(path)


async def test_failed_transaction_rolls_back(store: Store) -> None:
    """An error inside a transaction leaves nothing behind."""
    queue = JobQueue(store)

    async def insert_then_fail() -> None:
        async with store.transaction() as db:
            await db.execute("INSERT INTO users (user_id, created_at) VALUES (42, 0)")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await store.fetch_value("SELECT COUNT(*) FROM users WHERE user_id = 42") == 0
    assert await queue.count(Status.QUEUED) == 0


async def test_an_upgrade_keeps_a_copy_of_the_database_as_it_was(tmp_path: Path) -> None:
    """Opening a database of an older schema copies it beside itself first; the copy opens at its old version."""
    path = tmp_path / "imagine.db"
    older = sqlite3.connect(path)  # as the previous release left it: every migration but the last
    for migration in load_migrations()[:-1]:
        older.executescript(migration.sql)
    older.execute(f"PRAGMA user_version = {len(load_migrations()) - 1}")
    older.execute("INSERT INTO users (user_id, created_at) VALUES (7, 0)")
    older.commit()
    older.close()

    upgraded = await Store.open(path)
    assert await upgraded.fetch_value("PRAGMA user_version") == len(load_migrations())
    await upgraded.close()

    previous = len(load_migrations()) - 1
    copies = sorted(tmp_path.glob(f"imagine.schema-{previous}-*.db"))
    assert len(copies) == 1
    kept = sqlite3.connect(copies[0])
    try:
        assert kept.execute("PRAGMA user_version").fetchone()[0] == previous
        assert kept.execute("SELECT user_id FROM users").fetchall() == [(7,)]
    finally:
        kept.close()


async def test_no_copy_for_a_new_or_current_database(tmp_path: Path) -> None:
    """A new database and one already at this release's schema are opened without a copy."""
    path = tmp_path / "imagine.db"
    for _ in range(2):
        store = await Store.open(path)
        await store.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["imagine.db"]


def test_two_upgrades_in_one_second_keep_both_copies(tmp_path: Path) -> None:
    """The copy's name never overwrites an earlier copy."""
    path = tmp_path / "imagine.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x)")
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()
    first = keep_copy_before_upgrade(path, now=0.0)
    second = keep_copy_before_upgrade(path, now=0.0)
    assert first is not None and second is not None and first != second
    assert first.name == "imagine.schema-1-19700101T000000.db"
