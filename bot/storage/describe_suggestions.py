"""The prompts describe jobs wrote (table ``describe_suggestions``, migration 0007): written when the engine reports
them, read by whoever shows them or runs one."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bot.storage.store import Store


def save_suggestions(db: sqlite3.Connection, job_id: int, suggestions: Sequence[str]) -> None:
    """Keep a describe job's suggestions, in order, in the caller's transaction (a job rendered again after a crash
    replaces the ones of its earlier attempt)."""
    db.execute("DELETE FROM describe_suggestions WHERE job_id = ?", (job_id,))
    db.executemany(
        "INSERT INTO describe_suggestions (job_id, idx, prompt) VALUES (?, ?, ?)",
        [(job_id, index, prompt) for index, prompt in enumerate(suggestions)],
    )


async def load_suggestions(store: Store, job_id: int) -> tuple[str, ...]:
    """A describe job's suggestions in order; empty until the job completed."""
    rows = await store.fetch_all("SELECT prompt FROM describe_suggestions WHERE job_id = ? ORDER BY idx", (job_id,))
    return tuple(str(row[0]) for row in rows)
