"""Read-only summaries for /queue and /admin stats."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.jobs import Job, Lane
from bot.storage.store import Store

DAY_S = 86_400.0


@dataclass(frozen=True)
class QueueSummary:
    queued: dict[Lane, int]
    """Queued jobs per lane, every lane in order of service."""
    running: tuple[Job, ...]
    paused: bool

    @property
    def total_queued(self) -> int:
        return sum(self.queued.values())


@dataclass(frozen=True)
class Stats:
    since: float
    jobs: int
    completed: int
    failed: int
    cancelled: int
    members: int
    credits_spent: int
    credits_refunded: int
    median_seconds: float | None


async def queue_summary(store: Store, *, paused: bool) -> QueueSummary:
    rows = await store.fetch_all("SELECT lane, COUNT(*) FROM jobs WHERE status = 'queued' GROUP BY lane")
    queued = dict.fromkeys(Lane, 0)
    queued.update({Lane(row[0]): int(row[1]) for row in rows})
    running = await store.fetch_all("SELECT * FROM jobs WHERE status = 'running' ORDER BY started_at")
    return QueueSummary(queued, tuple(Job.from_row(row) for row in running), paused)


async def stats(store: Store, *, window_s: float = DAY_S, now: float | None = None) -> Stats:
    since = (now if now is not None else time.time()) - window_s
    row = await store.fetch_one(
        "SELECT COUNT(*), SUM(status = 'completed'), SUM(status = 'failed'), SUM(status = 'cancelled'),"
        " COUNT(DISTINCT user_id) FROM jobs WHERE created_at >= ?",
        (since,),
    )
    money = await store.fetch_one(
        "SELECT COALESCE(SUM(CASE WHEN kind = 'debit' THEN -delta END), 0),"
        " COALESCE(SUM(CASE WHEN kind = 'refund' THEN delta END), 0) FROM ledger WHERE created_at >= ?",
        (since,),
    )
    durations = [
        float(r[0])
        for r in await store.fetch_all(
            "SELECT finished_at - started_at FROM jobs WHERE status = 'completed' AND finished_at >= ?"
            " AND started_at IS NOT NULL ORDER BY 1",
            (since,),
        )
    ]
    assert row is not None
    assert money is not None
    return Stats(
        since=since,
        jobs=int(row[0] or 0),
        completed=int(row[1] or 0),
        failed=int(row[2] or 0),
        cancelled=int(row[3] or 0),
        members=int(row[4] or 0),
        credits_spent=int(money[0] or 0),
        credits_refunded=int(money[1] or 0),
        median_seconds=durations[len(durations) // 2] if durations else None,
    )
