"""The scheduler's in-memory view of the queue, rebuilt from SQLite at start-up (SQLite stays the truth).

Queued jobs are kept per lane and per member in dispatch order. Each lane also keeps a heap of every member's
next job keyed by (given back, GPU seconds used, job id), with lazy invalidation: whenever a member's next job
or usage changes, a fresh entry is pushed and stale ones are dropped when they reach the top. Relax jobs also sit
in a heap by the time they age, from which they move to a heap of aged jobs. So picking the next job costs
O(log n) instead of a scan over every member; :meth:`QueueIndex.scan` is the plain scan, kept as the reference
(tests check both agree) and for batches.
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.jobs import LANE_ORDER, Lane, RenderParams
from bot.scheduling.fairness import BatchKey, OrderKey, batch_key, estimate_position, order_key, relax_ready_at
from config.policy import SchedulerSettings

LANES: tuple[Lane, ...] = tuple(Lane)
"""Every lane, in order of service."""

_HeapEntry = tuple[int, float, int, int]
"""(0 for a given-back job else 1, usage, job id, user id)."""


@dataclass(slots=True)
class Queued:
    """A queued job as the dispatcher sees it."""

    job_id: int
    user_id: int
    lane: Lane
    created_at: float
    head: bool
    key: BatchKey
    model: str = ""
    """The model the job renders with: an engine that has it loaded is preferred (model affinity)."""

    @classmethod
    def from_row(cls, row: Any, *, head: bool) -> Queued:
        """A queued job from its row in the jobs table; ``head``: given back, it goes first in its lane."""
        params = RenderParams.from_json(row["params"])
        key = batch_key(row["kind"], params)
        return cls(row["id"], row["user_id"], Lane(row["lane"]), row["created_at"], head, key, params.model)

    @property
    def sort(self) -> tuple[int, int]:
        return (0 if self.head else 1, self.job_id)


class Usage:
    """GPU seconds per member in a sliding window, and recent job durations for the ETA."""

    def __init__(self, window_s: float, eta_window: int) -> None:
        self.window_s = window_s
        self.seconds: dict[int, float] = {}
        self._entries: deque[tuple[float, int, float]] = deque()
        self.durations: deque[float] = deque(maxlen=eta_window)

    def add(self, user_id: int, finished_at: float, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._entries.append((finished_at, user_id, seconds))
        self.seconds[user_id] = self.seconds.get(user_id, 0.0) + seconds
        self.durations.append(seconds)

    def prune(self, now: float) -> set[int]:
        """Forget work older than the window; returns the members whose usage changed."""
        horizon = now - self.window_s
        changed: set[int] = set()
        while self._entries and self._entries[0][0] < horizon:
            _, user_id, seconds = self._entries.popleft()
            left = self.seconds.get(user_id, 0.0) - seconds
            if left <= 1e-9:
                self.seconds.pop(user_id, None)
            else:
                self.seconds[user_id] = left
            changed.add(user_id)
        return changed

    def of(self, user_id: int) -> float:
        return self.seconds.get(user_id, 0.0)


class QueueIndex:
    """Queued jobs per lane and member, plus the heaps that find the next one fast."""

    def __init__(self, usage: Usage, policy: SchedulerSettings, blocked: Callable[[int], bool]) -> None:
        self.usage = usage
        self.policy = policy
        self.blocked = blocked
        self.lanes: dict[Lane, dict[int, list[Queued]]] = {lane: {} for lane in LANES}
        self.by_id: dict[int, Queued] = {}
        self._heaps: dict[Lane, list[_HeapEntry]] = {lane: [] for lane in LANES}
        self._aging: list[tuple[float, int, int, float]] = []  # (ready at, job id, user id, usage)
        self._aged: list[_HeapEntry] = []
        self._lane_counts: dict[Lane, int] = defaultdict(int)

    # --- membership ----------------------------------------------------------------------------------

    def add(self, entry: Queued) -> None:
        jobs = self.lanes[entry.lane].setdefault(entry.user_id, [])
        bisect.insort(jobs, entry, key=lambda queued: queued.sort)
        self.by_id[entry.job_id] = entry
        self._lane_counts[entry.lane] += 1
        if jobs[0] is entry:
            self._push(entry.lane, entry.user_id)

    def remove(self, job_id: int) -> Queued | None:
        entry = self.by_id.pop(job_id, None)
        if entry is None:
            return None
        members = self.lanes[entry.lane]
        jobs = members[entry.user_id]
        was_next = jobs[0] is entry
        jobs.remove(entry)
        self._lane_counts[entry.lane] -= 1
        if not jobs:
            del members[entry.user_id]
        elif was_next:
            self._push(entry.lane, entry.user_id)
        return entry

    def touch(self, user_id: int) -> None:
        """The member's usage or running count changed: re-key their next job in every lane."""
        for lane in LANES:
            if user_id in self.lanes[lane]:
                self._push(lane, user_id)

    def count(self, lane: Lane) -> int:
        return self._lane_counts[lane]

    def position(self, job_id: int) -> int:
        """1 for the next job to run, 0 when the job is not queued: an estimate under fair sharing."""
        entry = self.by_id.get(job_id)
        if entry is None:
            return 0
        earlier = sum(self.count(lane) for lane in LANES if LANE_ORDER[lane] < LANE_ORDER[entry.lane])
        members = self.lanes[entry.lane]
        own = members[entry.user_id].index(entry)
        others = (len(jobs) for user_id, jobs in members.items() if user_id != entry.user_id)
        return estimate_position(earlier, own, others)

    def __len__(self) -> int:
        return len(self.by_id)

    # --- heaps ---------------------------------------------------------------------------------------

    def _push(self, lane: Lane, user_id: int) -> None:
        entry = self.lanes[lane][user_id][0]
        usage = self.usage.of(user_id)
        heapq.heappush(self._heaps[lane], (0 if entry.head else 1, usage, entry.job_id, user_id))
        if lane is Lane.RELAX:
            ready = relax_ready_at(entry.created_at, usage, self.policy)
            heapq.heappush(self._aging, (ready, entry.job_id, user_id, usage))
        if len(self._heaps[lane]) > 4 * len(self.lanes[lane]) + 256:
            self._compact()

    def _compact(self) -> None:
        """Drop stale heap entries by rebuilding the heaps from the lanes."""
        self._heaps = {lane: [] for lane in LANES}
        self._aging, self._aged = [], []
        for lane in LANES:
            for user_id in self.lanes[lane]:
                entry = self.lanes[lane][user_id][0]
                usage = self.usage.of(user_id)
                self._heaps[lane].append((0 if entry.head else 1, usage, entry.job_id, user_id))
                if lane is Lane.RELAX:
                    ready = relax_ready_at(entry.created_at, usage, self.policy)
                    self._aging.append((ready, entry.job_id, user_id, usage))
            heapq.heapify(self._heaps[lane])
        heapq.heapify(self._aging)

    def _valid(self, lane: Lane, item: _HeapEntry) -> bool:
        head, usage, job_id, user_id = item
        jobs = self.lanes[lane].get(user_id)
        return (
            jobs is not None
            and jobs[0].job_id == job_id
            and (0 if jobs[0].head else 1) == head
            and usage == self.usage.of(user_id)
        )

    def _top(self, heap: list[_HeapEntry], lane: Lane) -> Queued | None:
        """The first valid, runnable entry of ``heap``; stale and blocked ones are dropped (a change re-pushes)."""
        while heap:
            item = heap[0]
            if self._valid(lane, item) and not self.blocked(item[3]):
                return self.lanes[lane][item[3]][0]
            heapq.heappop(heap)
        return None

    def best(self, now: float) -> Queued | None:
        """The next job to run: turbo, aged relax, fast, relax; fairness inside each. O(log n) amortised."""
        found = self._top(self._heaps[Lane.TURBO], Lane.TURBO)
        if found is not None:
            return found
        relax = self.lanes[Lane.RELAX]
        while self._aging and self._aging[0][0] <= now:
            _ready, job_id, user_id, usage = heapq.heappop(self._aging)
            jobs = relax.get(user_id)
            if jobs is not None and jobs[0].job_id == job_id and usage == self.usage.of(user_id):
                heapq.heappush(self._aged, (0 if jobs[0].head else 1, usage, job_id, user_id))
        found = self._top(self._aged, Lane.RELAX)
        if found is not None:
            return found
        return self._top(self._heaps[Lane.FAST], Lane.FAST) or self._top(self._heaps[Lane.RELAX], Lane.RELAX)

    def scan(self, now: float) -> list[tuple[OrderKey, Queued]]:
        """Every runnable member's next job in every lane with its order key, best first (the reference rule)."""
        candidates: list[tuple[OrderKey, Queued]] = []
        for lane in LANES:
            for user_id, jobs in self.lanes[lane].items():
                if self.blocked(user_id):
                    continue
                entry = jobs[0]
                usage = self.usage.of(user_id)
                key = order_key(lane, entry.head, entry.created_at, now, usage, entry.job_id, self.policy)
                candidates.append((key, entry))
        candidates.sort(key=lambda item: item[0])
        return candidates
