"""``db check`` finds broken invariants with their rows; ``db backup`` copies a live database that checks clean."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.jobs import Kind, Lane, Origin, RenderParams
from bot.operations.db_check import backup_database, check_database, describe
from bot.requests.preparation import Prepared
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from tests.conftest import make_settings

PARAMS = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)


async def _busy_database(tmp_path: Path) -> Path:
    """A database with members, a debit, a refund, a completed job and a grant."""
    settings = make_settings(tmp_path / "data", database_path=tmp_path / "imagine.db")
    store = await Store.open(settings.database_file)
    scheduler = Scheduler(store, settings)
    await scheduler.load()
    request = Prepared(Kind.IMAGINE, "fox", PARAMS)
    await scheduler.admit(1, [request, request], origin=Origin(), lane=Lane.FAST)
    [first] = await scheduler.dispatch(1)
    await scheduler.fail(first.id, "engine exploded")
    await store.close()
    return settings.database_file


async def test_a_healthy_database_passes(tmp_path: Path) -> None:
    """Debits, refunds and queued jobs all add up."""
    path = await _busy_database(tmp_path)
    assert check_database(path) == []
    assert describe([]) == "database check: every invariant holds"


async def test_broken_rows_are_named(tmp_path: Path) -> None:
    """A balance edited behind the ledger's back, and a completed job without images, are reported."""
    path = await _busy_database(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE users SET balance = balance + 7 WHERE user_id = 1")
        db.execute("UPDATE jobs SET status = 'completed', finished_at = 1 WHERE status = 'queued'")
    problems = check_database(path)
    names = {problem.check for problem in problems}
    assert "balance equals the sum of the member's ledger rows" in names
    assert "a completed job has its images and grid" in names
    text = describe(problems)
    assert "(1, " in text


async def test_backup_of_a_live_database_checks_clean(tmp_path: Path) -> None:
    """The backup is consistent and refuses to overwrite a file."""
    path = await _busy_database(tmp_path)
    target = backup_database(path, tmp_path / "backups" / "copy.db")
    assert check_database(target) == []
    with pytest.raises(FileExistsError):
        backup_database(path, target)


async def test_backup_into_a_folder_is_named_by_time_and_self_contained(tmp_path: Path) -> None:
    """`db backup backups/` writes `imagine-<UTC time>.db` inside the folder, with no -wal or -shm beside it."""
    path = tmp_path / "imagine.db"
    store = await Store.open(path)
    await store.write(lambda db: db.execute("INSERT INTO users (user_id, created_at) VALUES (7, 0)"))
    folder = tmp_path / "backups"
    folder.mkdir()
    try:
        first = backup_database(path, folder, now=0.0)
        second = backup_database(path, folder, now=3600.0)
    finally:
        await store.close()
    assert [first.name, second.name] == ["imagine-19700101T000000Z.db", "imagine-19700101T010000Z.db"]
    assert sorted(p.name for p in folder.iterdir()) == [first.name, second.name]
    copy = sqlite3.connect(first)
    try:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert copy.execute("SELECT user_id FROM users").fetchall() == [(7,)]
    finally:
        copy.close()
    assert sorted(p.name for p in folder.iterdir()) == [first.name, second.name]
