"""How a job's row moves through the queue in SQLite: started, leased, given back, completed or ended and refunded.

Plain sqlite3 functions that run inside one of the store's write transactions (:meth:`bot.storage.store.Store.write`)
and return the rows they changed; :class:`bot.scheduling.scheduler.Scheduler` runs them and mirrors the result in its
in-memory index. Every ending (failed, cancelled, given up) refunds the job in the transaction that ends it
(:func:`bot.scheduling.ledger.refund_job`), so a job is refunded at most once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from bot.errors import JobNotFoundError
from bot.jobs import ImageResult, Status
from bot.scheduling import ledger
from bot.scheduling.admission import console_job_sql
from bot.scheduling.fairness import should_requeue

ACTIVE = ("queued", "running")
"""The states a job can still leave."""


def _placeholders(values: Collection[Any]) -> str:
    return ", ".join("?" for _ in values)


def start_jobs(db: sqlite3.Connection, job_ids: Sequence[int], *, now: float, lease_s: float) -> list[Any]:
    """Mark these queued jobs running with a fresh lease and one more attempt; the rows of those still queued."""
    sql = (
        "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1, lease_expires_at = ?"
        f" WHERE status = 'queued' AND id IN ({_placeholders(job_ids)}) RETURNING *"
    )
    return db.execute(sql, (now, now + lease_s, *job_ids)).fetchall()


def renew_lease(db: sqlite3.Connection, job_id: int, *, expires_at: float) -> bool:
    """Extend a running job's lease; False when the job is no longer running."""
    sql = "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND status = 'running' RETURNING id"
    return db.execute(sql, (expires_at, job_id)).fetchone() is not None


def hold_leases(db: sqlite3.Connection, job_ids: Collection[int], *, expires_at: float) -> None:
    """Extend the lease of these jobs while they are queued or running (a console process holding its own)."""
    placeholders = _placeholders(job_ids)
    sql = f"UPDATE jobs SET lease_expires_at = ? WHERE id IN ({placeholders}) AND status IN ('queued', 'running')"
    db.execute(sql, (expires_at, *job_ids))


def end_job(
    db: sqlite3.Connection, job_id: int, status: Status, error: str, *, now: float, states: tuple[str, ...] = ACTIVE
) -> Any:
    """Move a job to a terminal state and refund it; its row, or None when it was not in ``states``."""
    row = db.execute(
        f"UPDATE jobs SET status = ?, finished_at = ?, error = ?, lease_expires_at = NULL"
        f" WHERE id = ? AND status IN ({_placeholders(states)}) RETURNING *",
        (status.value, now, error, job_id, *states),
    ).fetchone()
    if row is not None:
        reason = f"job {job_id} {status.value}: {error}"[:500]
        ledger.refund_job(db, row, reason=reason, actor=ledger.SYSTEM_ACTOR, now=now)
    return row


def complete_job(
    db: sqlite3.Connection, job_id: int, images: Sequence[ImageResult], grid_path: str, *, now: float
) -> Any:
    """Record a rendered job and its images; JobNotFoundError when it is no longer running."""
    row = db.execute(
        "UPDATE jobs SET status = 'completed', finished_at = ?, grid_path = ?, error = NULL,"
        " lease_expires_at = NULL WHERE id = ? AND status = 'running' RETURNING *",
        (now, grid_path, job_id),
    ).fetchone()
    if row is None:
        raise JobNotFoundError(job_id)
    db.executemany(
        "INSERT INTO results (job_id, idx, path, seed, width, height) VALUES (?, ?, ?, ?, ?, ?)",
        [(job_id, image.index, image.path, image.seed, image.width, image.height) for image in images],
    )
    return row


def requeue_job(db: sqlite3.Connection, job_id: int, reason: str, *, console_lease_expires_at: float) -> Any:
    """Put a running job back in the queue (a console job keeps a lease, its process holds it); None when it is
    not running."""
    sql = (
        "UPDATE jobs SET status = 'queued', started_at = NULL, error = ?,"
        f" lease_expires_at = CASE WHEN {console_job_sql()} THEN ? ELSE NULL END"
        " WHERE id = ? AND status = 'running' RETURNING *"
    )
    return db.execute(sql, (reason, console_lease_expires_at, job_id)).fetchone()


def take_back_jobs(
    db: sqlite3.Connection, condition: str, params: tuple[Any, ...], reason: str, *, now: float, max_attempts: int
) -> list[tuple[Any, bool]]:
    """Running jobs (not console jobs) matching the SQL ``condition`` go back to the queue, or fail and are
    refunded after ``max_attempts``; each changed row with True when it was requeued."""
    changed: list[tuple[Any, bool]] = []
    sql = f"SELECT * FROM jobs WHERE status = 'running' AND NOT {console_job_sql()} AND {condition}"
    for row in db.execute(sql, params).fetchall():
        if should_requeue(row["attempts"], max_attempts):
            updated = db.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, lease_expires_at = NULL, error = ?"
                " WHERE id = ? RETURNING *",
                (reason, row["id"]),
            ).fetchone()
            changed.append((updated, True))
        else:
            message = f"gave up after {row['attempts']} attempts ({reason})"
            changed.append((end_job(db, row["id"], Status.FAILED, message, now=now, states=("running",)), False))
    return changed


def cancel_unheld_console_jobs(db: sqlite3.Connection, error: str, *, now: float) -> list[Any]:
    """Cancel and refund console jobs whose lease ran out or that have none; the rows ended."""
    rows = db.execute(
        f"SELECT id FROM jobs WHERE status IN ('queued', 'running') AND {console_job_sql()}"
        " AND (lease_expires_at IS NULL OR lease_expires_at < ?)",
        (now,),
    ).fetchall()
    ended = [end_job(db, row["id"], Status.CANCELLED, error, now=now) for row in rows]
    return [row for row in ended if row is not None]
