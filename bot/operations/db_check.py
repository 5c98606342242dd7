"""``python -m bot db check`` and ``python -m bot db backup``: prove the database keeps its promises.

The checks are plain SQL over one read-only connection, so they also run on a copy, on a database another
process is using (WAL), and on a backup right after it is written.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bot.operations.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from bot.running.delivery import MAX_DELIVERY_ATTEMPTS
from bot.storage.store import copy_database
from config.settings import Settings

CHECKS: tuple[tuple[str, str, str], ...] = (
    (
        "balance equals the sum of the member's ledger rows",
        "SELECT u.user_id, u.balance, COALESCE(SUM(l.delta), 0) FROM users u"
        " LEFT JOIN ledger l ON l.user_id = u.user_id GROUP BY u.user_id"
        " HAVING u.balance != COALESCE(SUM(l.delta), 0)",
        "user_id, balance, ledger sum",
    ),
    ("no negative balance", "SELECT user_id, balance FROM users WHERE balance < 0", "user_id, balance"),
    (
        "each ledger row's balance_after is the running sum",
        "SELECT id, user_id, balance_after, running FROM (SELECT id, user_id, balance_after,"
        " SUM(delta) OVER (PARTITION BY user_id ORDER BY id) AS running FROM ledger) WHERE balance_after != running",
        "ledger id, user_id, balance_after, running sum",
    ),
    (
        "every job is in a known state",
        "SELECT id, status FROM jobs WHERE status NOT IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
        "job id, status",
    ),
    (
        "a job is charged what it cost, at most once",
        "SELECT j.id, j.cost, COALESCE(-SUM(l.delta), 0) FROM jobs j LEFT JOIN ledger l"
        " ON l.job_id = j.id AND l.kind = 'debit' GROUP BY j.id HAVING COALESCE(-SUM(l.delta), 0) != j.cost",
        "job id, cost, charged",
    ),
    (
        "failed and cancelled jobs are refunded exactly, others never",
        "SELECT j.id, j.status, j.cost, COALESCE(SUM(l.delta), 0) FROM jobs j LEFT JOIN ledger l"
        " ON l.job_id = j.id AND l.kind = 'refund' GROUP BY j.id HAVING COALESCE(SUM(l.delta), 0) !="
        " CASE WHEN j.status IN ('failed', 'cancelled') THEN (SELECT COALESCE(-SUM(d.delta), 0) FROM ledger d"
        " WHERE d.job_id = j.id AND d.kind = 'debit') ELSE 0 END",
        "job id, status, cost, refunded",
    ),
    (
        "a completed job has its images and grid",
        "SELECT j.id, COUNT(r.idx), j.grid_path FROM jobs j LEFT JOIN results r ON r.job_id = j.id"
        " WHERE j.status = 'completed' GROUP BY j.id HAVING COUNT(r.idx) = 0 OR j.grid_path IS NULL",
        "job id, images, grid",
    ),
    (
        "a job that ended has an end time",
        "SELECT id, status FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NULL",
        "job id, status",
    ),
)

DELIVERY_CHECKS: tuple[tuple[str, str, str], ...] = (
    (
        "only a job that ended is delivered or given up",
        "SELECT id, status, delivery FROM jobs WHERE delivery IN ('delivered', 'abandoned')"
        " AND status NOT IN ('completed', 'failed', 'cancelled')",
        "job id, status, delivery",
    ),
    (
        "a delivered job has its delivery time, a given-up one its reason",
        "SELECT id, delivery, delivered_at, delivery_error FROM jobs WHERE (delivery = 'delivered'"
        " AND delivered_at IS NULL) OR (delivery = 'abandoned' AND delivery_error IS NULL)",
        "job id, delivery, delivered at, reason",
    ),
    (
        "Discord jobs wait for their post, jobs of other surfaces never",
        "SELECT id, json_extract(origin, '$.source'), delivery FROM jobs"
        " WHERE (delivery = 'elsewhere') != (COALESCE(json_extract(origin, '$.source'), 'discord') != 'discord')",
        "job id, source, delivery",
    ),
    (
        "a pending post is given up after its last attempt",
        f"SELECT id, delivery_attempts, delivery_error FROM jobs WHERE delivery = 'pending'"
        f" AND delivery_attempts >= {MAX_DELIVERY_ATTEMPTS}",
        "job id, attempts, last error",
    ),
)
"""Durable delivery (migration 0005); skipped on a database that has not been upgraded yet."""


@dataclass(frozen=True)
class Problem:
    check: str
    columns: str
    rows: tuple[tuple[object, ...], ...]


def check_database(path: Path, *, check_files: bool = True) -> list[Problem]:
    """Every broken invariant with its offending rows (at most 20 each); an empty list means all hold."""
    if not path.is_file():
        raise FileNotFoundError(f"no database at {path}")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        problems: list[Problem] = []
        integrity = connection.execute("PRAGMA integrity_check").fetchall()
        if integrity != [("ok",)]:
            problems.append(Problem("SQLite integrity", "message", tuple(tuple(row) for row in integrity[:20])))
        job_columns = {row[1] for row in connection.execute("PRAGMA table_info(jobs)")}
        checks = CHECKS + (DELIVERY_CHECKS if "delivery" in job_columns else ())
        for name, sql, columns in checks:
            rows = connection.execute(sql).fetchmany(20)
            if rows:
                problems.append(Problem(name, columns, tuple(tuple(row) for row in rows)))
        if check_files:
            missing = [
                (job_id, image_path)
                for job_id, image_path in connection.execute(
                    "SELECT r.job_id, r.path FROM results r JOIN jobs j ON j.id = r.job_id WHERE j.status = 'completed'"
                )
                if not Path(image_path).is_file()
            ]
            if missing:
                problems.append(Problem("completed jobs' images are on disk", "job id, path", tuple(missing[:20])))
        return problems
    finally:
        connection.close()


def backup_database(source: Path, destination: Path, *, now: float | None = None) -> Path:
    """An online, consistent copy (SQLite's backup API: safe while the bot writes), written atomically.

    ``destination`` is the new file, or an existing folder: then the copy is ``<name>-<UTC time>.db`` inside it,
    so a daily or hourly backup command never collides with the one before.
    """
    if destination.is_dir():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        destination = destination / f"{source.stem}-{stamp}{source.suffix or '.db'}"
    return copy_database(source, destination)


def describe(problems: list[Problem]) -> str:
    if not problems:
        return "database check: every invariant holds"
    lines = [f"database check: {len(problems)} problem(s)"]
    for problem in problems:
        lines.append(f"- {problem.check} ({problem.columns}):")
        lines.extend(f"    {row}" for row in problem.rows)
    return "\n".join(lines)


def database_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the bot's database (it exists and is not SQLite, or is a folder), or None."""
    if path.is_dir():
        return f"the database path {path} is a folder; set database_path (or data_dir) to a file"
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            header = handle.read(16)
    except OSError as error:
        return f"the database {path} cannot be read ({error.strerror})"
    if header and header != b"SQLite format 3\x00":
        return f"{path} is not a SQLite database; set database_path (or data_dir) to the bot's database"
    return None


def manage_database(settings: Settings, args: argparse.Namespace) -> int:
    path = settings.database_file
    problem = database_problem(path)
    if problem is None and not path.exists():
        problem = f"no database at {path} (the bot creates it when it first starts; check data_dir)"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.action == "backup":
            target = backup_database(path, args.path)
            problems = check_database(target, check_files=False)
            print(f"backup written to {target}")
        else:
            problems = check_database(path, check_files=not args.no_files)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (sqlite3.Error, OSError) as error:
        where = f"could not write the backup {args.path}" if args.action == "backup" else f"could not read {path}"
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        print(f"error: {where}: {reason}", file=sys.stderr)
        return EXIT_CONFIG
    print(describe(problems))
    return EXIT_FAILED if problems else EXIT_OK
