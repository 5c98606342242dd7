"""The fair priority scheduler: which queued job the GPU runs next, and what happens to it until it ends.

SQLite is the source of truth for jobs and money; this module keeps a small in-memory index of the queued jobs
(per lane, per member, in order) rebuilt from SQLite at start-up, so dispatch never scans the jobs table:

- **Lanes.** turbo first, then fast, then relax. A relax job that has waited ``relax_aging_s`` (longer for members
  who used more GPU time recently) is served before fast jobs, so relax never starves.
- **Fairness inside a lane.** The member with the least GPU time in the sliding window goes first, then the oldest
  job among theirs. A job given back after a crash or a lost lease goes to the head of its lane.
- **Limits.** Per tier: max running and max queued jobs per member; banned members are refused; a queue-wide pause
  keeps queued jobs and stops dispatch.
- **Money.** The debit is written in the same transaction as the job (see :mod:`bot.ledger`); a job that fails, is
  cancelled or is lost for good is refunded in the transaction that ends it.
- **Leases.** A running job holds a lease renewed by engine progress; an expired lease puts it back at the head of
  its lane with one more attempt, or fails and refunds it after ``max_attempts``.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from bot import ledger
from bot.costs import job_cost
from bot.errors import (
    BannedError,
    InsufficientCreditsError,
    JobNotFoundError,
    LaneNotAllowedError,
    QueueLimitError,
    QueuePausedError,
)
from bot.jobs import LANE_ORDER, ImageResult, Job, Kind, Lane, Origin, RenderParams, Status
from bot.store import Store
from config.settings import SchedulerSettings, Settings

log = logging.getLogger(__name__)

BatchKey = tuple[str, str, int, int, int, str]
"""What makes jobs batchable together: model, kind, width, height, steps, sampler."""

_LANES = (Lane.TURBO, Lane.FAST, Lane.RELAX)
_PAUSED_KEY = "paused"


# --- pure rules ----------------------------------------------------------------------------------------------


def relax_aged(waited_s: float, usage_s: float, policy: SchedulerSettings) -> bool:
    """True when a relax job has waited long enough to go before fast jobs; heavy users wait longer."""
    return waited_s >= policy.relax_aging_s * (1.0 + usage_s / policy.relax_usage_unit_s)


def lane_rank(lane: Lane, waited_s: float, usage_s: float, policy: SchedulerSettings) -> int:
    """turbo 0, aged relax 1, fast 2, relax 3: lower is served first."""
    if lane is Lane.TURBO:
        return 0
    if lane is Lane.FAST:
        return 2
    return 1 if relax_aged(waited_s, usage_s, policy) else 3


def order_key(
    lane: Lane, head: bool, waited_s: float, usage_s: float, job_id: int, policy: SchedulerSettings
) -> tuple[int, int, float, int]:
    """The dispatch order of a member's next job: lane (with aging), given-back jobs first, least GPU time, oldest."""
    return (lane_rank(lane, waited_s, usage_s, policy), 0 if head else 1, usage_s, job_id)


def batch_key(kind: str, params: RenderParams) -> BatchKey:
    """Jobs with the same key can be rendered together in one engine batch."""
    return (params.model, str(kind), params.width, params.height, params.steps, params.sampler)


def should_requeue(attempts: int, max_attempts: int) -> bool:
    """A lost or crashed job goes back to the queue until it has been tried ``max_attempts`` times."""
    return attempts < max_attempts


def estimate_position(earlier_lanes: int, own_ahead: int, others_in_lane: Iterable[int]) -> int:
    """1-based position under fair sharing: each other member gets about one turn per turn of ours."""
    turns = own_ahead + 1
    return earlier_lanes + own_ahead + sum(min(count, turns) for count in others_in_lane) + 1


# --- in-memory state -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Queued:
    """A queued job as the dispatcher sees it."""

    job_id: int
    user_id: int
    lane: Lane
    created_at: float
    head: bool
    key: BatchKey

    @property
    def sort(self) -> tuple[int, int]:
        return (0 if self.head else 1, self.job_id)


class QueueIndex:
    """Queued jobs per lane and member, each member's list in dispatch order. Mirrors SQLite."""

    def __init__(self) -> None:
        self.lanes: dict[Lane, dict[int, list[Queued]]] = {lane: {} for lane in _LANES}
        self.by_id: dict[int, Queued] = {}

    def add(self, entry: Queued) -> None:
        jobs = self.lanes[entry.lane].setdefault(entry.user_id, [])
        bisect.insort(jobs, entry, key=lambda queued: queued.sort)
        self.by_id[entry.job_id] = entry

    def remove(self, job_id: int) -> Queued | None:
        entry = self.by_id.pop(job_id, None)
        if entry is None:
            return None
        members = self.lanes[entry.lane]
        jobs = members[entry.user_id]
        jobs.remove(entry)
        if not jobs:
            del members[entry.user_id]
        return entry

    def count(self, lane: Lane) -> int:
        return sum(len(jobs) for jobs in self.lanes[lane].values())

    def __len__(self) -> int:
        return len(self.by_id)


class Usage:
    """GPU seconds per member in a sliding window, and recent job durations for the ETA."""

    def __init__(self, window_s: float, eta_window: int) -> None:
        self.window_s = window_s
        self.seconds: dict[int, float] = defaultdict(float)
        self._entries: deque[tuple[float, int, float]] = deque()
        self.durations: deque[float] = deque(maxlen=eta_window)

    def add(self, user_id: int, finished_at: float, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._entries.append((finished_at, user_id, seconds))
        self.seconds[user_id] += seconds
        self.durations.append(seconds)

    def prune(self, now: float) -> None:
        horizon = now - self.window_s
        while self._entries and self._entries[0][0] < horizon:
            _, user_id, seconds = self._entries.popleft()
            left = self.seconds[user_id] - seconds
            if left <= 1e-9:
                del self.seconds[user_id]
            else:
                self.seconds[user_id] = left

    def of(self, user_id: int) -> float:
        return self.seconds.get(user_id, 0.0)


@dataclass(frozen=True)
class JobRequest:
    """One job a member asks for, before it is priced and queued."""

    kind: Kind
    prompt: str
    params: RenderParams
    origin: Origin = field(default_factory=Origin)
    parent_id: int | None = None
    parent_index: int | None = None


@dataclass(frozen=True)
class Admission:
    """Jobs accepted into the queue, what they cost together, and the balance left."""

    jobs: tuple[Job, ...]
    lane: Lane
    cost: int
    balance: int
    tier: str


# --- the scheduler -------------------------------------------------------------------------------------------


class Scheduler:
    """The jobs table seen as a fair, paid, leased priority queue. Call :meth:`load` once before use."""

    def __init__(self, store: Store, settings: Settings, *, now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.policy = settings.scheduler
        self.now = now
        self.index = QueueIndex()
        self.usage = Usage(self.policy.fairness_window_s, self.policy.eta_window)
        self.running: dict[int, tuple[int, float]] = {}
        self._running_per_member: dict[int, int] = defaultdict(int)
        self._member_tier: dict[int, str] = {}
        self.paused = False

    # --- start-up ----------------------------------------------------------------------------------------

    async def load(self, *, recover: bool = True) -> list[int]:
        """Rebuild the in-memory index from SQLite; with ``recover``, take back jobs a previous process left
        running (same rule as an expired lease). Returns the ids put back in the queue."""
        requeued = await self.recover_interrupted() if recover else []
        await self._rebuild()
        return requeued

    async def _rebuild(self) -> None:
        self.index = QueueIndex()
        self.usage = Usage(self.policy.fairness_window_s, self.policy.eta_window)
        self.running.clear()
        self._running_per_member.clear()
        rows = await self.store.fetch_all(
            "SELECT j.id, j.user_id, j.lane, j.kind, j.params, j.created_at, j.attempts, j.status, j.started_at,"
            " u.tier FROM jobs j JOIN users u ON u.user_id = j.user_id"
            " WHERE j.status IN ('queued', 'running') ORDER BY j.id"
        )
        for row in rows:
            self._member_tier[row["user_id"]] = row["tier"]
            if row["status"] == Status.RUNNING:
                self._mark_running(row["id"], row["user_id"], row["started_at"] or self.now())
                continue
            params = RenderParams.from_json(row["params"])
            self.index.add(
                Queued(
                    row["id"],
                    row["user_id"],
                    Lane(row["lane"]),
                    row["created_at"],
                    row["attempts"] > 0,
                    batch_key(row["kind"], params),
                )
            )
        horizon = self.now() - self.policy.fairness_window_s
        finished = await self.store.fetch_all(
            "SELECT user_id, started_at, finished_at FROM jobs WHERE finished_at >= ? AND started_at IS NOT NULL"
            " AND status IN ('completed', 'failed', 'cancelled') ORDER BY finished_at",
            (horizon,),
        )
        for row in finished:
            self.usage.add(row["user_id"], row["finished_at"], row["finished_at"] - row["started_at"])
        value = await self.store.fetch_value("SELECT value FROM scheduler_state WHERE key = ?", (_PAUSED_KEY,))
        self.paused = value == "1"
        log.info("scheduler loaded: %d queued, %d running, paused=%s", len(self.index), len(self.running), self.paused)

    # --- enqueue -----------------------------------------------------------------------------------------

    def quote(self, request: JobRequest, lane: Lane) -> int:
        """What one job costs in ``lane`` (before any tier discount)."""
        spec = self.settings.registry.get(request.params.model)
        multiplier = spec.cost_multiplier if spec is not None else 1.0
        return job_cost(
            request.params, kind=request.kind, lane=lane, model_multiplier=multiplier, credits=self.settings.credits
        )

    async def admit(self, user_id: int, requests: Sequence[JobRequest], *, lane: Lane | None = None) -> Admission:
        """Check the member may queue ``requests``, charge them all up front, and queue them, in one transaction.

        Raises BannedError, QueuePausedError, LaneNotAllowedError, QueueLimitError or InsufficientCreditsError;
        then nothing is queued and nothing is charged.
        """
        if not requests:
            raise ValueError("admit needs at least one job")
        if self.paused:
            raise QueuePausedError()
        now = self.now()
        jobs: list[Job] = []
        async with self.store.transaction() as db:
            member = await ledger.ensure_member(db, user_id, self.settings, now)
            if member.banned:
                raise BannedError()
            tier = ledger.tier_of(self.settings, member.tier)
            balance = member.balance + await ledger.refill_member(db, member, tier, now)
            chosen = lane if lane is not None else Lane(member.default_lane)
            if chosen is Lane.RELAX and not tier.relax:
                raise LaneNotAllowedError(chosen.value, member.tier)
            queued = await _fetch_int(
                db, "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status = 'queued'", (user_id,)
            )
            if queued + len(requests) > tier.max_queued:
                raise QueueLimitError(queued=queued, limit=tier.max_queued)
            costs = [0 if tier.unlimited else self.quote(request, chosen) for request in requests]
            total = sum(costs)
            if total > balance:
                raise InsufficientCreditsError(
                    balance=balance, cost=total, relax_offered=tier.relax and chosen is not Lane.RELAX
                )
            for request, cost in zip(requests, costs, strict=True):
                cursor = await db.execute(
                    "INSERT INTO jobs (user_id, kind, status, lane, prompt, params, origin, parent_id,"
                    " parent_index, cost, created_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                    (
                        user_id,
                        request.kind.value,
                        chosen.value,
                        request.prompt,
                        request.params.to_json(),
                        request.origin.to_json(),
                        request.parent_id,
                        request.parent_index,
                        cost,
                        now,
                    ),
                )
                row = await cursor.fetchone()
                assert row is not None
                job = Job.from_row(row)
                if cost:
                    balance = await ledger.apply(
                        db,
                        user_id=user_id,
                        delta=-cost,
                        kind=ledger.EntryKind.DEBIT,
                        reason=f"{job.kind.value} job {job.id} ({chosen.value})",
                        actor=str(user_id),
                        now=now,
                        job_id=job.id,
                    )
                jobs.append(job)
        # Committed: mirror it in memory (no await between the commit and here, so no dispatch sees a gap).
        self._member_tier[user_id] = member.tier
        for job in jobs:
            self.index.add(Queued(job.id, user_id, chosen, now, False, batch_key(job.kind, job.params)))
        return Admission(tuple(jobs), chosen, total, balance, member.tier)

    async def enqueue(
        self,
        *,
        user_id: int,
        kind: Kind,
        lane: Lane | None,
        prompt: str,
        params: RenderParams,
        origin: Origin,
        parent_id: int | None = None,
        parent_index: int | None = None,
    ) -> Job:
        """Queue (and charge) one job; see :meth:`admit`."""
        request = JobRequest(kind, prompt, params, origin, parent_id, parent_index)
        admission = await self.admit(user_id, [request], lane=lane)
        return admission.jobs[0]

    # --- dispatch ----------------------------------------------------------------------------------------

    def _max_running(self, user_id: int) -> int:
        return ledger.tier_of(
            self.settings, self._member_tier.get(user_id, self.settings.credits.default_tier)
        ).max_running

    def pick(self, max_batch: int = 1) -> list[Queued]:
        """The next job (and up to ``max_batch - 1`` compatible ones) by lane, aging and fairness. No I/O."""
        if self.paused or not self.index.by_id:
            return []
        now = self.now()
        self.usage.prune(now)
        policy = self.policy
        usage = self.usage.seconds
        running = self._running_per_member
        best: Queued | None = None
        best_key: tuple[int, int, float, int] | None = None
        candidates: list[tuple[tuple[int, int, float, int], Queued]] = []
        for lane in _LANES:
            for user_id, jobs in self.index.lanes[lane].items():
                if running.get(user_id, 0) and running[user_id] >= self._max_running(user_id):
                    continue
                entry = jobs[0]
                key = order_key(lane, entry.head, now - entry.created_at, usage.get(user_id, 0.0), entry.job_id, policy)
                if max_batch > 1:
                    candidates.append((key, entry))
                if best_key is None or key < best_key:
                    best, best_key = entry, key
            if lane is Lane.TURBO and best is not None:
                break
        if best is None:
            return []
        if max_batch <= 1:
            return [best]
        chosen = [best]
        taken = {best.user_id}
        for _, entry in sorted(candidates, key=lambda item: item[0]):
            if len(chosen) >= max_batch:
                break
            if entry.user_id not in taken and entry.key == best.key:
                chosen.append(entry)
                taken.add(entry.user_id)
        return chosen

    async def dispatch(self, max_batch: int | None = None) -> list[Job]:
        """Mark the next compatible jobs running (with a lease) and return them; [] when none can run."""
        limit = self.policy.max_batch if max_batch is None else max_batch
        for _ in range(8):
            picked = self.pick(limit)
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
            " ORDER BY CASE lane WHEN 'turbo' THEN 0 WHEN 'fast' THEN 1 ELSE 2 END, attempts = 0, id LIMIT 1",
            tuple(only),
        )
        if row is None:
            return None
        jobs = await self._start([row[0]])
        return jobs[0] if jobs else None

    async def _start(self, job_ids: Sequence[int]) -> list[Job]:
        now = self.now()
        placeholders = ", ".join("?" for _ in job_ids)
        async with self.store.transaction() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1, lease_expires_at = ?"
                f" WHERE status = 'queued' AND id IN ({placeholders}) RETURNING *",
                (now, now + self.policy.lease_s, *job_ids),
            )
            rows = await cursor.fetchall()
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

    # --- leases ------------------------------------------------------------------------------------------

    async def renew(self, job_id: int) -> bool:
        """Extend a running job's lease (engine progress); False when the job is no longer running."""
        now = self.now()
        async with self.store.transaction() as db:
            cursor = await db.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND status = 'running' RETURNING id",
                (now + self.policy.lease_s, job_id),
            )
            row = await cursor.fetchone()
        return row is not None

    async def expire_leases(self) -> list[int]:
        """Take back running jobs whose lease ran out: requeue at the head of their lane, or fail and refund
        after ``max_attempts``. Returns the ids handled."""
        return await self._take_back("lease_expires_at < ?", (self.now(),), "the engine stopped reporting progress")

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
        now = self.now()
        changed: list[tuple[Any, bool]] = []
        async with self.store.transaction() as db:
            cursor = await db.execute(f"SELECT * FROM jobs WHERE status = 'running' AND {condition}", params)
            for row in await cursor.fetchall():
                if should_requeue(row["attempts"], self.policy.max_attempts):
                    updated = await _fetch_row(
                        db,
                        "UPDATE jobs SET status = 'queued', started_at = NULL, lease_expires_at = NULL, error = ?"
                        " WHERE id = ? RETURNING *",
                        (reason, row["id"]),
                    )
                    changed.append((updated, True))
                else:
                    message = f"gave up after {row['attempts']} attempts ({reason})"
                    updated = await self._end(db, row["id"], Status.FAILED, message, now, ("running",))
                    changed.append((updated, False))
        for row, requeued in changed:
            self._unmark_running(row["id"], now)
            if requeued:
                self._index_row(row, head=True)
        return sorted(row["id"] for row, _ in changed)

    def _index_row(self, row: Any, *, head: bool) -> None:
        self.index.add(
            Queued(
                row["id"],
                row["user_id"],
                Lane(row["lane"]),
                row["created_at"],
                head,
                batch_key(row["kind"], RenderParams.from_json(row["params"])),
            )
        )

    # --- endings -----------------------------------------------------------------------------------------

    async def complete(self, job_id: int, images: Sequence[ImageResult], grid_path: str) -> Job:
        """Record a rendered job; JobNotFoundError when it is no longer running (cancelled, taken back)."""
        now = self.now()
        async with self.store.transaction() as db:
            row = await _fetch_row(
                db,
                "UPDATE jobs SET status = 'completed', finished_at = ?, grid_path = ?, error = NULL,"
                " lease_expires_at = NULL WHERE id = ? AND status = 'running' RETURNING *",
                (now, grid_path, job_id),
            )
            if row is None:
                raise JobNotFoundError(job_id)
            await db.executemany(
                "INSERT INTO results (job_id, idx, path, seed, width, height) VALUES (?, ?, ?, ?, ?, ?)",
                [(job_id, image.index, image.path, image.seed, image.width, image.height) for image in images],
            )
        self._unmark_running(job_id, now)
        return Job.from_row(row)

    async def fail(self, job_id: int, error: str) -> Job:
        """End a queued or running job as failed and refund it; JobNotFoundError when it already ended."""
        return await self._finish(job_id, Status.FAILED, error)

    async def cancel(self, job_id: int, actor: str) -> Job:
        """Cancel a queued or running job and refund it (the caller stops the engine for a running one)."""
        return await self._finish(job_id, Status.CANCELLED, f"cancelled by {actor}")

    async def requeue(self, job_id: int, reason: str) -> Job:
        """Put a running job back at the head of its lane (e.g. after an engine crash)."""
        now = self.now()
        async with self.store.transaction() as db:
            row = await _fetch_row(
                db,
                "UPDATE jobs SET status = 'queued', started_at = NULL, lease_expires_at = NULL, error = ?"
                " WHERE id = ? AND status = 'running' RETURNING *",
                (reason, job_id),
            )
        if row is None:
            raise JobNotFoundError(job_id)
        self._unmark_running(job_id, now)
        self._index_row(row, head=True)
        return Job.from_row(row)

    async def _finish(self, job_id: int, status: Status, error: str) -> Job:
        now = self.now()
        async with self.store.transaction() as db:
            row = await self._end(db, job_id, status, error, now, ("queued", "running"))
        if row is None:
            raise JobNotFoundError(job_id)
        self.index.remove(job_id)
        self._unmark_running(job_id, now)
        return Job.from_row(row)

    async def _end(
        self, db: aiosqlite.Connection, job_id: int, status: Status, error: str, now: float, states: tuple[str, ...]
    ) -> Any:
        """Move a job to a terminal state and refund it, in the caller's transaction; None if not in ``states``."""
        row = await _fetch_row(
            db,
            f"UPDATE jobs SET status = ?, finished_at = ?, error = ?, lease_expires_at = NULL"
            f" WHERE id = ? AND status IN ({', '.join('?' for _ in states)}) RETURNING *",
            (status.value, now, error, job_id, *states),
        )
        if row is not None:
            await ledger.refund_job(
                db, row, reason=f"job {job_id} {status.value}: {error}"[:500], actor=ledger.SYSTEM_ACTOR, now=now
            )
        return row

    # --- pause -------------------------------------------------------------------------------------------

    async def pause(self, actor: str) -> None:
        """Stop dispatching and refuse new jobs; queued jobs stay queued."""
        await self._set_paused(True, actor)

    async def resume(self, actor: str) -> None:
        await self._set_paused(False, actor)

    async def _set_paused(self, paused: bool, actor: str) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO scheduler_state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_PAUSED_KEY, "1" if paused else "0"),
            )
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
        return self.position_of(job.id)

    def position_of(self, job_id: int) -> int:
        entry = self.index.by_id.get(job_id)
        if entry is None:
            return 0
        earlier = sum(self.index.count(lane) for lane in _LANES if LANE_ORDER[lane] < LANE_ORDER[entry.lane])
        members = self.index.lanes[entry.lane]
        own = members[entry.user_id].index(entry)
        others = (len(jobs) for user_id, jobs in members.items() if user_id != entry.user_id)
        return estimate_position(earlier, own, others)

    def eta_s(self, job_id: int) -> float | None:
        """Seconds until the job is likely done, from recent job durations; None when there is no history."""
        position = self.position_of(job_id)
        durations = self.usage.durations
        if position == 0 or not durations:
            return None
        return position * (sum(durations) / len(durations))

    async def active_jobs(self, user_id: int) -> list[Job]:
        """A member's queued and running jobs, oldest first."""
        rows = await self.store.fetch_all(
            "SELECT * FROM jobs WHERE user_id = ? AND status IN ('queued', 'running') ORDER BY id", (user_id,)
        )
        return [Job.from_row(row) for row in rows]

    async def count(self, status: Status) -> int:
        return int(await self.store.fetch_value("SELECT COUNT(*) FROM jobs WHERE status = ?", (status.value,)))


async def _fetch_row(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    cursor = await db.execute(sql, params)
    return await cursor.fetchone()


async def _fetch_int(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> int:
    row = await _fetch_row(db, sql, params)
    return int(row[0]) if row is not None else 0
