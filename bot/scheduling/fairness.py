"""The scheduler's rules as pure functions: lane order, relax aging, fairness, batching, retries, positions.

Order of service: turbo, then relax jobs that have aged, then fast, then the rest of relax. Inside one of those,
a job given back after a crash or a lost lease goes first, then the member with the least GPU time in the sliding
window, then the oldest job. A relax job ages after ``relax_aging_s``, plus one more ``relax_aging_s`` for every
``relax_usage_unit_s`` of GPU time its member used in the window: heavy relax users wait longer than light ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.jobs import KIND_TO_ENGINE, Kind, Lane, RenderParams
from config.policy import SchedulerSettings
from engine.protocol import BatchKey as EngineBatchKey
from engine.protocol import batch_key_of


class RunsAlone:
    """The batch key of a job the engine renders on its own: each job gets its own, equal to no other key."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RunsAlone()"


BatchKey = EngineBatchKey | RunsAlone
"""A queued job's batch key: the engine's :func:`engine.protocol.batch_key` of its task, or a :class:`RunsAlone`
of its own when the engine would run it alone. Jobs with equal keys may be sent to the engine as one batch."""

OrderKey = tuple[int, int, float, int]
"""(lane rank, 0 for a given-back job else 1, GPU seconds used, job id): smaller is served first."""


def relax_ready_at(created_at: float, usage_s: float, policy: SchedulerSettings) -> float:
    """When a relax job queued at ``created_at`` starts going before fast jobs."""
    return created_at + policy.relax_aging_s * (1.0 + usage_s / policy.relax_usage_unit_s)


def relax_aged(created_at: float, now: float, usage_s: float, policy: SchedulerSettings) -> bool:
    """True when a relax job has waited long enough to go before fast jobs."""
    return now >= relax_ready_at(created_at, usage_s, policy)


def lane_rank(lane: Lane, created_at: float, now: float, usage_s: float, policy: SchedulerSettings) -> int:
    """turbo 0, aged relax 1, fast 2, relax 3: lower is served first."""
    if lane is Lane.TURBO:
        return 0
    if lane is Lane.FAST:
        return 2
    return 1 if relax_aged(created_at, now, usage_s, policy) else 3


def order_key(
    lane: Lane, head: bool, created_at: float, now: float, usage_s: float, job_id: int, policy: SchedulerSettings
) -> OrderKey:
    """The dispatch order of a member's next job in a lane."""
    return (lane_rank(lane, created_at, now, usage_s, policy), 0 if head else 1, usage_s, job_id)


def batch_key(kind: str, params: RenderParams) -> BatchKey:
    """Jobs with the same key are rendered by the engine in one pipeline call (the engine's own rule)."""
    key = batch_key_of(KIND_TO_ENGINE[Kind(kind)], params)
    return RunsAlone() if key is None else key


def lane_order_sql(column: str = "lane") -> str:
    """A SQL expression of a lane ``column`` that sorts in order of service (turbo first), from :class:`Lane`."""
    ranks = " ".join(f"WHEN '{lane.value}' THEN {rank}" for rank, lane in enumerate(Lane))
    return f"CASE {column} {ranks} ELSE {len(Lane)} END"


def should_requeue(attempts: int, max_attempts: int) -> bool:
    """A lost or crashed job goes back to the queue until it has been tried ``max_attempts`` times."""
    return attempts < max_attempts


def estimate_position(earlier_lanes: int, own_ahead: int, others_in_lane: Iterable[int]) -> int:
    """1-based position under fair sharing: each other member gets about one turn per turn of ours."""
    turns = own_ahead + 1
    return earlier_lanes + own_ahead + sum(min(count, turns) for count in others_in_lane) + 1
