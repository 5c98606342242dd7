"""The jobs table's transitions on a real SQLite file: endings refund once, take-back requeues then gives up,
a requeued console job stays held, and console jobs nobody holds are cancelled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.jobs import Kind, Lane, Origin, RenderParams, Status
from bot.requests.preparation import Prepared
from bot.scheduling import ledger
from bot.scheduling.admission import admit_jobs
from bot.scheduling.job_transitions import cancel_unheld_console_jobs, end_job, requeue_job, start_jobs, take_back_jobs
from bot.storage.store import Store
from config.settings import Settings

BIG = RenderParams("fox", "", "sd15", 512, 512, 20, 7.0, 1)  # 4 credits in the fast lane
NOW = 1_800_000_000.0
SETTINGS = Settings(_env_file=None, model="tiny")  # type: ignore[call-arg]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "imagine.db")
    yield opened
    await opened.close()


async def queue_one(store: Store, user_id: int = 1, origin: Origin | None = None) -> int:
    prepared = [Prepared(Kind.IMAGINE, "fox", BIG)]
    admission = await store.write(
        lambda db: admit_jobs(
            db, SETTINGS, user_id=user_id, prepared=prepared, origin=origin or Origin(), lane=Lane.FAST, now=NOW
        )
    )
    return admission.jobs[0].job.id


async def balance(store: Store, user_id: int = 1) -> int:
    return int(await store.fetch_value("SELECT balance FROM users WHERE user_id = ?", (user_id,)))


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED])
async def test_an_ending_refunds_once(store: Store, status: Status) -> None:
    """The first ending refunds the job; a second finds it ended and changes nothing."""
    job_id = await queue_one(store)
    charged = await balance(store)
    first = await store.write(lambda db: end_job(db, job_id, status, "boom", now=NOW + 1))
    assert first is not None and first["status"] == status.value
    assert await balance(store) == charged + 4
    assert await store.write(lambda db: end_job(db, job_id, status, "boom", now=NOW + 2)) is None
    assert await balance(store) == charged + 4


async def test_take_back_requeues_then_gives_up(store: Store) -> None:
    """A lost running job goes back to the queue until max_attempts, then fails and is refunded."""
    job_id = await queue_one(store)
    charged = await balance(store)
    outcomes = []
    for attempt, now in ((1, NOW + 1), (2, NOW + 2)):
        started = await store.write(lambda db, now=now: start_jobs(db, [job_id], now=now, lease_s=60))
        assert [row["attempts"] for row in started] == [attempt]
        changed = await store.write(lambda db: take_back_jobs(db, "1", (), "lost", now=NOW + 9, max_attempts=2))
        outcomes.append([(row["status"], requeued) for row, requeued in changed])
    assert outcomes == [[("queued", True)], [("failed", False)]]
    assert await balance(store) == charged + 4


@pytest.mark.parametrize(("user_id", "origin", "lease"), [(0, Origin(source="cli"), NOW + 60), (1, Origin(), None)])
async def test_requeue_keeps_a_console_job_held(
    store: Store, user_id: int, origin: Origin, lease: float | None
) -> None:
    """A requeued console job keeps a lease (its process holds it); any other job has none while queued."""
    job_id = await queue_one(store, user_id, origin)
    await store.write(lambda db: start_jobs(db, [job_id], now=NOW, lease_s=60))
    row = await store.write(lambda db: requeue_job(db, job_id, "engine crashed", console_lease_expires_at=NOW + 60))
    assert (row["status"], row["lease_expires_at"]) == ("queued", lease)
    assert await store.write(lambda db: requeue_job(db, job_id, "again", console_lease_expires_at=NOW)) is None


async def test_unheld_console_jobs_are_cancelled(store: Store) -> None:
    """Only console jobs whose lease ran out are cancelled; held ones and members' jobs stay queued."""
    console = await queue_one(store, ledger.CONSOLE_USER_ID, Origin(source="cli"))  # held until NOW + lease_s
    member = await queue_one(store)
    held_until = NOW + SETTINGS.scheduler.lease_s
    assert await store.write(lambda db: cancel_unheld_console_jobs(db, "gone", now=held_until - 1)) == []
    ended = await store.write(lambda db: cancel_unheld_console_jobs(db, "gone", now=held_until + 1))
    assert [(row["id"], row["status"], row["error"]) for row in ended] == [(console, "cancelled", "gone")]
    assert await store.fetch_value("SELECT status FROM jobs WHERE id = ?", (member,)) == "queued"
