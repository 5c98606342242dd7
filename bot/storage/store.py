"""The SQLite store: one writer connection whose transactions are serialised, and a separate reader.

SQLite in WAL mode lets readers run beside the writer. Every transaction that reads and then writes starts
with ``BEGIN IMMEDIATE`` so it takes the write lock up front (a deferred transaction that upgrades gets
SQLITE_BUSY at once, ignoring busy_timeout). aiosqlite runs each connection on its own thread, and
transactions on one shared connection would interleave between coroutines, so writes go through an
``asyncio.Lock``. Migrations are numbered ``.sql`` files applied in order at start-up (``PRAGMA user_version``);
before it migrates an existing database, the store copies it beside itself (``imagine.schema-v4-<time>.db``), so
an upgrade can be rolled back by putting that copy back and installing the previous release.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The numbered migrations shipped in ``bot/migrations``, in order; gaps or duplicates are a bug."""
    folder = resources.files("bot") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    expected = list(range(1, len(found) + 1))
    if [migration.version for migration in found] != expected:
        raise RuntimeError(f"migrations must be numbered 0001.. without gaps, found {[m.name for m in found]}")
    return found


async def _configure(connection: aiosqlite.Connection) -> None:
    connection.row_factory = sqlite3.Row
    await connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await connection.execute("PRAGMA foreign_keys = ON")
    await connection.execute("PRAGMA synchronous = NORMAL")


class Store:
    """The bot's database. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = await asyncio.to_thread(keep_copy_before_upgrade, path)
        if kept is not None:
            log.info("the database will be upgraded; a copy of it as it was is at %s", kept)
        writer = await aiosqlite.connect(path, isolation_level=None)
        reader: aiosqlite.Connection | None = None
        try:
            await _configure(writer)
            mode = await (await writer.execute("PRAGMA journal_mode = WAL")).fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                log.warning("SQLite did not switch %s to WAL mode (got %s)", path, mode)
            await _migrate(writer)
            reader = await aiosqlite.connect(path, isolation_level=None)
            await _configure(reader)
            await reader.execute("PRAGMA query_only = ON")
        except BaseException:  # also cancelled: an open connection's thread keeps the process from exiting
            if reader is not None:
                await reader.close()
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def close(self) -> None:
        async with self._write_lock:
            await self._reader.close()
            await self._writer.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on success and rolled back on any error."""
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            else:
                await self._writer.execute("COMMIT")

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` as one write transaction (``BEGIN IMMEDIATE``) on the writer's own thread.

        The whole transaction costs one hop to the connection's thread instead of one per statement, which is
        what keeps enqueue and dispatch fast. ``work`` is plain synchronous sqlite3 code; it must not block on
        anything but the database. Committed on success, rolled back on any error (which is re-raised).
        """
        async with self._write_lock:
            # aiosqlite runs every call on the connection's thread through _execute; we hand it one function
            # that runs the whole transaction there, on the underlying sqlite3 connection.
            return await self._writer._execute(_run_transaction, self._writer._conn, work)

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self._reader.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self._reader.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def fetch_value(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]


def copy_database(source: Path, destination: Path) -> Path:
    """An online, consistent copy (SQLite's backup API: safe while the bot writes), written atomically; an
    existing ``destination`` is refused (``FileExistsError``). The copy is a single self-contained file (rollback
    journal, not WAL), so no ``-wal`` or ``-shm`` file is left beside it."""
    if destination.exists():
        raise FileExistsError(f"{destination} exists; choose a new file for the backup")
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.partial")
    temporary.unlink(missing_ok=True)
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writer = sqlite3.connect(temporary)
    try:
        reader.backup(writer)
        writer.execute("PRAGMA journal_mode = DELETE")
    finally:
        writer.close()
        reader.close()
    temporary.replace(destination)
    return destination


def keep_copy_before_upgrade(path: Path, *, now: float | None = None) -> Path | None:
    """Copy the database at ``path`` beside itself when it exists and this release will migrate it.

    The copy is named after the schema version it holds and the time, ``imagine.schema-4-20261126T053000.db``;
    nothing is copied for a new database, one already up to date, or one newer than this release (refused later).
    """
    if not path.is_file() or path.stat().st_size == 0:
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        current = int(connection.execute("PRAGMA user_version").fetchone()[0])
    finally:
        connection.close()
    if current == 0 or current >= len(load_migrations()):
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if now is None else now))
    name = f"{path.stem}.schema-{current}-{stamp}"
    target = path.with_name(f"{name}{path.suffix}")
    for attempt in range(2, 100):  # two starts within one second keep both copies
        if not target.exists():
            break
        target = path.with_name(f"{name}-{attempt}{path.suffix}")
    return copy_database(path, target)


def _run_transaction(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


async def _migrate(connection: aiosqlite.Connection) -> None:
    current = int((await (await connection.execute("PRAGMA user_version")).fetchone())[0])
    migrations = load_migrations()
    if current > len(migrations):
        raise RuntimeError(
            f"the database is at schema version {current}, newer than this bot knows ({len(migrations)}); "
            "upgrade imaginebot or restore a backup"
        )
    for migration in migrations[current:]:
        log.info("applying database migration %s", migration.name)
        await connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(migration.sql):
                await connection.execute(statement)
            await connection.execute(f"PRAGMA user_version = {migration.version}")
        except BaseException:
            await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction behind our back)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise RuntimeError(f"incomplete SQL statement at the end of a migration: {buffer.strip()[:80]}")
    return statements
