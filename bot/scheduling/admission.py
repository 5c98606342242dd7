"""Admission: whether a member may queue prepared jobs, what they cost, and the rows that queue and charge them.

Runs inside the scheduler's write transaction (:meth:`bot.scheduling.scheduler.Scheduler.admit`), so the checks, the
jobs and the debit are one atomic step: a refusal leaves nothing queued and nothing charged. The checks, in order:

- **Member.** The row is created on first use and refilled (see :mod:`bot.scheduling.ledger`); a banned member is
  refused.
- **Lane.** The lane asked for (a ``--fast``/``--relax``/``--turbo`` flag) or the member's default; relax only where
  the tier allows it.
- **Duplicates.** The same follow-up (button) of the same image, still queued or running, is refused.
- **Limits.** Per tier: at most ``max_queued`` queued jobs per member.
- **Money.** Every job is priced (:func:`quote`; nothing for an unlimited tier) and the total is charged up front,
  or none of it when the balance is short.

**Console jobs** (``python -m bot generate``) belong to the process that queued them: they are queued with a lease
that process renews, and the scheduler never dispatches, recovers or requeues them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from bot.application.admitted import Admitted, Submitted
from bot.errors import (
    BannedError,
    DuplicateJobError,
    InsufficientCreditsError,
    LaneNotAllowedError,
    QueueLimitError,
)
from bot.jobs import Job, Lane, Origin, RenderParams
from bot.requests.preparation import Prepared
from bot.scheduling import ledger
from bot.scheduling.costs import job_cost
from config.settings import Settings

CONSOLE_SOURCE = "cli"
"""``Origin.source`` of a job queued from a shell (:meth:`bot.actors.Actor.console`)."""


def is_console_job(user_id: int, origin: Origin) -> bool:
    """A job queued by ``python -m bot generate``: the console's own, from a shell. Its process runs it."""
    return user_id == ledger.CONSOLE_USER_ID and origin.source == CONSOLE_SOURCE


def console_job_sql(table: str = "") -> str:
    """:func:`is_console_job` as an SQL condition on the jobs table (``table``: its alias in the query)."""
    prefix = f"{table}." if table else ""
    return (
        f"({prefix}user_id = {ledger.CONSOLE_USER_ID}"
        f" AND json_extract({prefix}origin, '$.source') = '{CONSOLE_SOURCE}')"
    )


def asked_lane(prepared: Iterable[Prepared], lane: Lane | None) -> Lane | None:
    """The lane a request asks for: ``lane`` when given, else the first lane a prepared job's flag named, else None
    (the member's default lane)."""
    if lane is not None:
        return lane
    return next((item.lane for item in prepared if item.lane is not None), None)


def quote(settings: Settings, prepared: Prepared, lane: Lane) -> int:
    """What one job costs in ``lane`` (before any tier discount)."""
    spec = settings.registry.get(prepared.params.model)
    multiplier = spec.cost_multiplier if spec is not None else 1.0
    return job_cost(
        prepared.params, kind=prepared.kind, lane=lane, model_multiplier=multiplier, credits=settings.credits
    )


def admit_jobs(
    db: sqlite3.Connection,
    settings: Settings,
    *,
    user_id: int,
    prepared: Sequence[Prepared],
    origin: Origin,
    lane: Lane | None,
    now: float,
) -> Admitted:
    """Check the member may queue ``prepared``, insert the jobs and debit their cost, in the caller's transaction.

    Returns what was written. Raises BannedError, LaneNotAllowedError, DuplicateJobError, QueueLimitError or
    InsufficientCreditsError (in that order of checks); the caller's transaction then rolls back."""
    member = ledger.ensure_member(db, user_id, settings, now)
    if member.banned:
        raise BannedError()
    tier = ledger.tier_of(settings, member.tier)
    balance = member.balance + ledger.refill_member(db, member, tier, now)
    asked = asked_lane(prepared, lane)
    chosen = asked if asked is not None else Lane(member.default_lane)
    if chosen is Lane.RELAX and not tier.relax:
        raise LaneNotAllowedError(chosen.value, member.tier)
    for item in prepared:
        if item.parent_id is not None:
            _refuse_duplicate_follow_up(db, user_id, item)
    queued = db.execute("SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status = 'queued'", (user_id,)).fetchone()[0]
    if queued + len(prepared) > tier.max_queued:
        raise QueueLimitError(queued=queued, limit=tier.max_queued)
    costs = [0 if tier.unlimited else quote(settings, item, chosen) for item in prepared]
    total = sum(costs)
    if total > balance:
        raise InsufficientCreditsError(
            balance=balance, cost=total, relax_offered=tier.relax and chosen is not Lane.RELAX
        )
    held = is_console_job(user_id, origin)  # its process holds its jobs from this moment
    lease_expires_at = now + settings.scheduler.lease_s if held else None
    jobs: list[Job] = []
    for item, cost in zip(prepared, costs, strict=True):
        row = db.execute(
            "INSERT INTO jobs (user_id, kind, status, lane, prompt, params, origin, parent_id,"
            " parent_index, cost, created_at, lease_expires_at)"
            " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                user_id,
                item.kind.value,
                chosen.value,
                item.prompt,
                item.params.to_json(),
                origin.to_json(),
                item.parent_id,
                item.parent_index,
                cost,
                now,
                lease_expires_at,
            ),
        ).fetchone()
        job = Job.from_row(row)
        if cost:
            balance = ledger.apply(
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
    return Admitted(tuple(Submitted(job, balance) for job in jobs), chosen, total, balance, member.tier)


def _refuse_duplicate_follow_up(db: sqlite3.Connection, user_id: int, prepared: Prepared) -> None:
    """Twenty clicks on one button make one job: the same follow-up of the same image, still active, is refused."""
    rows = db.execute(
        "SELECT id, params FROM jobs WHERE user_id = ? AND parent_id = ? AND parent_index IS ? AND kind = ?"
        " AND status IN ('queued', 'running')",
        (user_id, prepared.parent_id, prepared.parent_index, prepared.kind.value),
    ).fetchall()
    wanted = _follow_up_signature(prepared.params)
    for job_id, params in rows:
        if _follow_up_signature(RenderParams.from_json(params)) == wanted:
            raise DuplicateJobError(job_id)


def _follow_up_signature(params: RenderParams) -> tuple[float, float, str, float]:
    return (params.strength, params.zoom, params.pan, params.upscale_factor)
