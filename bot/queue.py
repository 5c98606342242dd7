"""A persistent job queue on the SQLite store: enqueue, claim the next job, complete or fail it.

Lanes are served in order (turbo, fast, relax), oldest job first within a lane. Queued jobs survive a
restart; a job found ``running`` at start-up was interrupted and is put back at the head of its lane.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence

from bot.errors import JobNotFoundError
from bot.jobs import LANE_ORDER, ImageResult, Job, Kind, Lane, Origin, RenderParams, Status
from bot.store import Store

log = logging.getLogger(__name__)

_LANE_RANK_SQL = "CASE lane WHEN 'turbo' THEN 0 WHEN 'fast' THEN 1 ELSE 2 END"


class JobQueue:
    """The jobs table seen as a queue."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def enqueue(
        self,
        *,
        user_id: int,
        kind: Kind,
        lane: Lane,
        prompt: str,
        params: RenderParams,
        origin: Origin,
        parent_id: int | None = None,
        parent_index: int | None = None,
    ) -> Job:
        now = time.time()
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO users (user_id, created_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
                (user_id, now),
            )
            cursor = await db.execute(
                "INSERT INTO jobs (user_id, kind, status, lane, prompt, params, origin, parent_id,"
                " parent_index, created_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    user_id,
                    kind.value,
                    lane.value,
                    prompt,
                    params.to_json(),
                    origin.to_json(),
                    parent_id,
                    parent_index,
                    now,
                ),
            )
            row = await cursor.fetchone()
        assert row is not None
        return Job.from_row(row)

    async def claim_next(self, only: Collection[int] | None = None) -> Job | None:
        """Mark the next queued job running and return it, or None when nothing is queued."""
        where = "status = 'queued'"
        params: list[object] = []
        if only is not None:
            if not only:
                return None
            where += f" AND id IN ({', '.join('?' for _ in only)})"
            params.extend(only)
        async with self.store.transaction() as db:
            cursor = await db.execute(
                f"UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1"
                f" WHERE id = (SELECT id FROM jobs WHERE {where} ORDER BY {_LANE_RANK_SQL}, id LIMIT 1)"
                " RETURNING *",
                (time.time(), *params),
            )
            row = await cursor.fetchone()
        return None if row is None else Job.from_row(row)

    async def complete(self, job_id: int, images: Sequence[ImageResult], grid_path: str) -> Job:
        async with self.store.transaction() as db:
            await db.executemany(
                "INSERT INTO results (job_id, idx, path, seed, width, height) VALUES (?, ?, ?, ?, ?, ?)",
                [(job_id, image.index, image.path, image.seed, image.width, image.height) for image in images],
            )
            cursor = await db.execute(
                "UPDATE jobs SET status = 'completed', finished_at = ?, grid_path = ?, error = NULL"
                " WHERE id = ? AND status = 'running' RETURNING *",
                (time.time(), grid_path, job_id),
            )
            row = await cursor.fetchone()
            if row is None:
                raise JobNotFoundError(job_id)
        return Job.from_row(row)

    async def fail(self, job_id: int, error: str) -> Job:
        return await self._finish(job_id, Status.FAILED, error)

    async def requeue(self, job_id: int, reason: str) -> Job:
        """Put a running job back at the head of its lane (its id keeps its place), e.g. after a crash."""
        async with self.store.transaction() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, error = ?"
                " WHERE id = ? AND status = 'running' RETURNING *",
                (reason, job_id),
            )
            row = await cursor.fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return Job.from_row(row)

    async def recover_interrupted(self) -> list[int]:
        """At start-up: jobs left running by a previous process go back to the queue."""
        async with self.store.transaction() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL,"
                " error = 'interrupted by a restart' WHERE status = 'running' RETURNING id"
            )
            rows = await cursor.fetchall()
        ids = sorted(row[0] for row in rows)
        if ids:
            log.warning("re-queued %d job(s) interrupted by a restart: %s", len(ids), ids)
        return ids

    async def _finish(self, job_id: int, status: Status, error: str | None) -> Job:
        async with self.store.transaction() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ?"
                " WHERE id = ? AND status IN ('queued', 'running') RETURNING *",
                (status.value, time.time(), error, job_id),
            )
            row = await cursor.fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return Job.from_row(row)

    async def get(self, job_id: int) -> Job:
        row = await self.store.fetch_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise JobNotFoundError(job_id)
        return Job.from_row(row)

    async def images(self, job_id: int) -> list[ImageResult]:
        rows = await self.store.fetch_all(
            "SELECT job_id, idx, path, seed, width, height FROM results WHERE job_id = ? ORDER BY idx",
            (job_id,),
        )
        return [ImageResult(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows]

    async def position(self, job: Job) -> int:
        """1 for the next job to run; 0 when the job is no longer queued."""
        if job.status is not Status.QUEUED:
            return 0
        ahead = await self.store.fetch_value(
            f"SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND ({_LANE_RANK_SQL} < ?"
            f" OR ({_LANE_RANK_SQL} = ? AND id < ?))",
            (LANE_ORDER[job.lane], LANE_ORDER[job.lane], job.id),
        )
        return int(ahead) + 1

    async def active_jobs(self, user_id: int) -> list[Job]:
        """A member's queued and running jobs, oldest first."""
        rows = await self.store.fetch_all(
            "SELECT * FROM jobs WHERE user_id = ? AND status IN ('queued', 'running') ORDER BY id", (user_id,)
        )
        return [Job.from_row(row) for row in rows]

    async def count(self, status: Status) -> int:
        return int(await self.store.fetch_value("SELECT COUNT(*) FROM jobs WHERE status = ?", (status.value,)))
