"""The fair priority scheduler: which queued job the GPU runs next, and what happens to it until it ends.

SQLite is the source of truth for jobs and money (new jobs are written by :mod:`~bot.scheduling.admission`, later
changes by :mod:`~bot.scheduling.job_transitions`); an in-memory index of the queued jobs (per lane, per member, in
order), rebuilt from SQLite at start-up, lets dispatch run without scanning the jobs table:

- **Lanes.** turbo first, then fast, then relax. A relax job that has waited ``relax_aging_s`` (longer for members
  who used more GPU time recently) is served before fast jobs, so relax never starves.
- **Fairness inside a lane.** The member with the least GPU time in the sliding window goes first, then the oldest
  job among theirs. A job given back after a crash or a lost lease goes to the head of its lane.
- **Admission.** :mod:`bot.scheduling.admission` checks, prices and inserts new jobs with their debit in one
  transaction; the scheduler runs it, refuses everything while paused, and mirrors the committed jobs in its index.
- **Limits.** Per tier: max running jobs per member (a member at the limit is skipped); a queue-wide pause keeps
  queued jobs and stops dispatch.
- **Money.** A job that fails, is cancelled or is lost for good is refunded in the transaction that ends it.
- **Leases.** A running job holds a lease renewed by engine progress; an expired lease puts it back at the head of
  its lane with one more attempt, or fails and refunds it after ``max_attempts``.
- **Console jobs** (``python -m bot generate``) belong to the process that queued them: it runs them itself (it
  claims only its own) and holds their lease, queued or running, until they end. No other process dispatches,
  recovers or requeues them; one whose lease ran out (its process is gone, killed or crashed) is cancelled and
  refunded, at start-up and by the lease sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from bot.application.admitted import Admitted
from bot.errors import JobNotFoundError, QueuePausedError
from bot.jobs import ImageResult, Job, Lane, Origin, RenderParams, Status
from bot.requests.preparation import Prepared
from bot.scheduling import ledger
from bot.scheduling.admission import admit_jobs, console_job_sql
from bot.scheduling.affinity import Affinity, eta_seconds, pick_next
from bot.scheduling.fairness import batch_key, lane_order_sql
from bot.scheduling.job_transitions import (
    cancel_unheld_console_jobs,
    complete_job,
    end_job,
    hold_leases,
    renew_lease,
    requeue_job,
    start_jobs,
    take_back_jobs,
)
from bot.scheduling.queue_index import Queued, QueueIndex, Usage
from bot.storage.store import Store
from config.settings import Settings

log = logging.getLogger(__name__)

_PAUSED_KEY = "paused"
ABANDONED_CONSOLE_JOB = "cancelled: the generate command that queued it is no longer running"


class Scheduler:
    """The jobs table seen as a fair, paid, leased priority queue. Call :meth:`load` once before use."""

    def __init__(self, store: Store, settings: Settings, *, now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.policy = settings.scheduler
        self.now = now
        self.usage = Usage(self.policy.fairness_window_s, self.policy.eta_window)
        self.index = QueueIndex(self.usage, self.policy, self._blocked)
        self.running: dict[int, tuple[int, float]] = {}
        self._running_per_member: dict[int, int] = defaultdict(int)
        self._member_tier: dict[int, str] = {}
        self._waiting_allowed = 0  # jobs a member may have claimed beyond their limit (see dispatch)
        self.paused = False
        self.engines = 1
        """How many engines render in parallel (the engine pool keeps it current): ETAs count rounds of them."""
        self._dispatching = asyncio.Lock()
        """One dispatch at a time: with several engines, two pickers must not pick the same job."""

    # --- start-up ----------------------------------------------------------------------------------------

    async def load(self, *, recover: bool = True) -> list[int]:
        """Rebuild the in-memory index from SQLite; with ``recover``, take back jobs a previous process left
        running (same rule as an expired lease). Console jobs whose process is gone are cancelled either way.
        Returns the ids put back in the queue."""
        await self.cancel_abandoned_console_jobs()
        requeued = await self.recover_interrupted() if recover else []
        await self._rebuild()
        return requeued

    async def _rebuild(self) -> None:
        self.usage = Usage(self.policy.fairness_window_s, self.policy.eta_window)
        self.index = QueueIndex(self.usage, self.policy, self._blocked)
        self.running.clear()
        self._running_per_member.clear()
        rows = await self.store.fetch_all(
            "SELECT j.id, j.user_id, j.lane, j.kind, j.params, j.created_at, j.attempts, j.status, j.started_at,"
            " u.tier FROM jobs j JOIN users u ON u.user_id = j.user_id"
            f" WHERE j.status IN ('queued', 'running') AND NOT {console_job_sql('j')} ORDER BY j.id"
        )
        for row in rows:
            self._member_tier[row["user_id"]] = row["tier"]
            if row["status"] == Status.RUNNING:
                self._mark_running(row["id"], row["user_id"], row["started_at"] or self.now())
                continue
            self.index.add(Queued.from_row(row, head=row["attempts"] > 0))
        horizon = self.now() - self.policy.fairness_window_s
        finished = await self.store.fetch_all(
            "SELECT user_id, started_at, finished_at FROM jobs WHERE finished_at >= ? AND started_at IS NOT NULL"
            " AND status IN ('completed', 'failed', 'cancelled') ORDER BY finished_at",
            (horizon,),
        )
        for row in finished:
            self.usage.add(row["user_id"], row["finished_at"], row["finished_at"] - row["started_at"])
        for user_id in list(self.usage.seconds):
            self.index.touch(user_id)
        value = await self.store.fetch_value("SELECT value FROM scheduler_state WHERE key = ?", (_PAUSED_KEY,))
        self.paused = value == "1"
        log.info("scheduler loaded: %d queued, %d running, paused=%s", len(self.index), len(self.running), self.paused)

    # --- admission --------------------------------------------------------------------------------------

    async def admit(
        self, user_id: int, prepared: Sequence[Prepared], *, origin: Origin, lane: Lane | None = None
    ) -> Admitted:
        """Check the member may queue ``prepared``, charge them all up front, and queue them, in one transaction
        (:func:`bot.scheduling.admission.admit_jobs`). ``lane`` overrides the lane the jobs' flags ask for.

        Raises QueuePausedError, or what admission refuses; then nothing is queued and nothing is charged.
        """
        if not prepared:
            raise ValueError("admit needs at least one job")
        if self.paused:
            raise QueuePausedError()
        now = self.now()
        admitted = await self.store.write(
            lambda db: admit_jobs(
                db, self.settings, user_id=user_id, prepared=prepared, origin=origin, lane=lane, now=now
            )
        )
        # Committed: mirror it in memory (no await between the commit and here, so no dispatch sees a gap).
        self._member_tier[user_id] = admitted.tier
        for item in admitted.jobs:
            job = item.job
            key = batch_key(job.kind, job.params)
            self.index.add(Queued(job.id, user_id, admitted.lane, now, False, key, job.params.model))
        return admitted

    # --- dispatch ----------------------------------------------------------------------------------------

    def _blocked(self, user_id: int) -> bool:
        """True when the member already runs as many jobs as their tier allows (see :meth:`dispatch`)."""
        running = self._running_per_member.get(user_id, 0)
        if not running:
            return False
        tier = self._member_tier.get(user_id, self.settings.credits.default_tier)
        return running >= ledger.tier_of(self.settings, tier).max_running + self._waiting_allowed

    def pick(self, max_batch: int = 1, affinity: Affinity | None = None) -> list[Queued]:
        """The next job (and up to ``max_batch - 1`` compatible ones) by lane, aging and fairness, as
        :func:`~bot.scheduling.affinity.pick_next` rules with ``affinity`` (several engines). No I/O."""
        if self.paused or not self.index.by_id:
            return []
        now = self.now()
        for user_id in self.usage.prune(now):
            self.index.touch(user_id)
        return pick_next(self.index, now, max_batch, affinity)

    async def dispatch(
        self, max_batch: int | None = None, *, behind_another: bool = False, affinity: Affinity | None = None
    ) -> list[Job]:
        """Mark the next compatible jobs running (with a lease) and return them; [] when none can run.
        ``behind_another``: they wait in the engine behind the batch it renders, so a member may have one job more
        claimed than their running limit (which counts jobs on the GPU). ``affinity``: what the asking engine
        holds (see :meth:`pick`). One dispatch runs at a time."""
        limit = self.policy.max_batch if max_batch is None else max_batch
        async with self._dispatching:
            for _ in range(8):
                self._waiting_allowed = int(behind_another)  # read by _blocked during this pick only (no await)
                picked = self.pick(limit, affinity)
                self._waiting_allowed = 0
                if not picked:
                    return []
                jobs = await self._start([entry.job_id for entry in picked])
                if jobs:
                    return jobs
            return []

    async def claim_next(self, only: Collection[int] | None = None) -> Job | None:
        """The next job to run (marked running), or None. ``only`` restricts to some job ids (the CLI's own)."""
        if only is None:
            jobs = await self.dispatch(1)
            return jobs[0] if jobs else None
        if not only or self.paused:
            return None
        placeholders = ", ".join("?" for _ in only)
        row = await self.store.fetch_one(
            f"SELECT id FROM jobs WHERE status = 'queued' AND id IN ({placeholders})"
            f" ORDER BY {lane_order_sql()}, attempts = 0, id LIMIT 1",
            tuple(only),
        )
        if row is None:
            return None
        jobs = await self._start([row[0]])
        return jobs[0] if jobs else None

    async def _start(self, job_ids: Sequence[int]) -> list[Job]:
        now = self.now()
        rows = await self.store.write(lambda db: start_jobs(db, job_ids, now=now, lease_s=self.policy.lease_s))
        for job_id in job_ids:  # started, or gone from the queue behind our back (another process)
            self.index.remove(job_id)
        jobs = sorted((Job.from_row(row) for row in rows), key=lambda job: job_ids.index(job.id))
        for job in jobs:
            self._mark_running(job.id, job.user_id, now)
        return jobs

    def _mark_running(self, job_id: int, user_id: int, started_at: float) -> None:
        self.running[job_id] = (user_id, started_at)
        self._running_per_member[user_id] += 1

    def _unmark_running(self, job_id: int, finished_at: float) -> None:
        entry = self.running.pop(job_id, None)
        if entry is None:
            return
        user_id, started_at = entry
        self._running_per_member[user_id] -= 1
        if self._running_per_member[user_id] <= 0:
            del self._running_per_member[user_id]
        self.usage.add(user_id, finished_at, finished_at - started_at)
        self.index.touch(user_id)

    # --- leases ------------------------------------------------------------------------------------------

    async def renew(self, job_id: int) -> bool:
        """Extend a running job's lease (engine progress); False when the job is no longer running."""
        expires_at = self.now() + self.policy.lease_s
        return await self.store.write(lambda db: renew_lease(db, job_id, expires_at=expires_at))

    async def expire_leases(self) -> list[int]:
        """Take back running jobs whose lease ran out: requeue at the head of their lane, or fail and refund
        after ``max_attempts``; cancel console jobs whose process no longer holds them. Returns the ids handled."""
        cancelled = await self.cancel_abandoned_console_jobs()
        taken = await self._take_back("lease_expires_at < ?", (self.now(),), "the engine stopped reporting progress")
        return sorted(cancelled + taken)

    async def hold(self, job_ids: Collection[int]) -> None:
        """Renew the lease of these jobs while they are queued or running (a ``generate`` process holds its own
        jobs this way, so no other process takes them for abandoned)."""
        if not job_ids:
            return
        expires_at = self.now() + self.policy.lease_s
        await self.store.write(lambda db: hold_leases(db, job_ids, expires_at=expires_at))

    async def cancel_abandoned_console_jobs(self) -> list[int]:
        """Cancel and refund console jobs (``generate``) that their process no longer holds: its lease ran out, or
        there is none (left by a release that did not hold them). Nobody would ever run or receive them."""
        now = self.now()
        ended = await self.store.write(lambda db: cancel_unheld_console_jobs(db, ABANDONED_CONSOLE_JOB, now=now))
        for row in ended:
            self.index.remove(row["id"])
            self._unmark_running(row["id"], now)
        job_ids = sorted(row["id"] for row in ended)
        if job_ids:
            log.warning(
                "cancelled %d console job(s) whose generate command is no longer running (refunded): %s",
                len(job_ids),
                job_ids,
            )
        return job_ids

    async def recover_interrupted(self) -> list[int]:
        """At start-up: jobs a previous process left running are taken back like expired leases.

        Returns the ids put back in the queue (those over ``max_attempts`` fail and are refunded)."""
        handled = await self._take_back("1", (), "interrupted by a restart")
        rows = await self.store.fetch_all(
            f"SELECT id FROM jobs WHERE status = 'queued' AND id IN ({', '.join('?' for _ in handled)})",
            tuple(handled),
        )
        requeued = sorted(row[0] for row in rows)
        if requeued:
            log.warning("re-queued %d job(s) interrupted by a restart: %s", len(requeued), requeued)
        return requeued

    async def _take_back(self, condition: str, params: tuple[Any, ...], reason: str) -> list[int]:
        now, max_attempts = self.now(), self.policy.max_attempts
        changed = await self.store.write(
            lambda db: take_back_jobs(db, condition, params, reason, now=now, max_attempts=max_attempts)
        )
        for row, requeued in changed:
            self._unmark_running(row["id"], now)
            if requeued:
                self.index.add(Queued.from_row(row, head=True))
        return sorted(row["id"] for row, _ in changed)

    # --- endings -----------------------------------------------------------------------------------------

    async def complete(self, job_id: int, images: Sequence[ImageResult], grid_path: str) -> Job:
        """Record a rendered job; JobNotFoundError when it is no longer running (cancelled, taken back)."""
        now = self.now()
        row = await self.store.write(lambda db: complete_job(db, job_id, images, grid_path, now=now))
        self._unmark_running(job_id, now)
        return Job.from_row(row)

    async def fail(self, job_id: int, error: str) -> Job:
        """End a queued or running job as failed and refund it; JobNotFoundError when it already ended."""
        return await self._finish(job_id, Status.FAILED, error)

    async def cancel(self, job_id: int, actor: str) -> Job:
        """Cancel a queued or running job and refund it (the caller stops the engine for a running one)."""
        return await self._finish(job_id, Status.CANCELLED, f"cancelled by {actor}")

    async def requeue(self, job_id: int, reason: str) -> Job:
        """Put a running job back at the head of its lane (e.g. after an engine crash); a console job stays held."""
        now = self.now()
        held_until = now + self.policy.lease_s
        row = await self.store.write(lambda db: requeue_job(db, job_id, reason, console_lease_expires_at=held_until))
        if row is None:
            raise JobNotFoundError(job_id)
        self._unmark_running(job_id, now)
        self.index.add(Queued.from_row(row, head=True))
        return Job.from_row(row)

    async def _finish(self, job_id: int, status: Status, error: str) -> Job:
        now = self.now()
        row = await self.store.write(lambda db: end_job(db, job_id, status, error, now=now))
        if row is None:
            raise JobNotFoundError(job_id)
        self.index.remove(job_id)
        self._unmark_running(job_id, now)
        return Job.from_row(row)

    # --- pause -------------------------------------------------------------------------------------------

    async def pause(self, actor: str) -> None:
        """Stop dispatching and refuse new jobs; queued jobs stay queued."""
        await self._set_paused(True, actor)

    async def resume(self, actor: str) -> None:
        await self._set_paused(False, actor)

    async def _set_paused(self, paused: bool, actor: str) -> None:
        sql = (
            "INSERT INTO scheduler_state (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        await self.store.write(lambda db: db.execute(sql, (_PAUSED_KEY, "1" if paused else "0")))
        self.paused = paused
        log.warning("queue %s by %s", "paused" if paused else "resumed", actor)

    # --- reading -----------------------------------------------------------------------------------------

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
        """1 for the next job to run; 0 when the job is not queued (an estimate under fair sharing)."""
        return self.index.position(job.id)

    def eta_s(self, job_id: int) -> float | None:
        """Seconds until the job is likely done, from recent job durations; None when there is no history."""
        position = self.index.position(job_id)
        durations = self.usage.durations
        if position == 0 or not durations:
            return None
        return eta_seconds(position, self.engines, sum(durations) / len(durations))

    async def active_jobs(self, user_id: int) -> list[Job]:
        """A member's queued and running jobs, oldest first."""
        rows = await self.store.fetch_all(
            "SELECT * FROM jobs WHERE user_id = ? AND status IN ('queued', 'running') ORDER BY id", (user_id,)
        )
        return [Job.from_row(row) for row in rows]

    async def active_inputs(self) -> set[Path]:
        """The input images (``RenderParams.input_paths``) of queued and running jobs: upkeep keeps them."""
        rows = await self.store.fetch_all("SELECT params FROM jobs WHERE status IN ('queued', 'running')")
        return {Path(path) for row in rows for path in RenderParams.from_json(row["params"]).input_paths}

    async def count(self, status: Status) -> int:
        return int(await self.store.fetch_value("SELECT COUNT(*) FROM jobs WHERE status = ?", (status.value,)))
