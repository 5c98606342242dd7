"""Durable delivery: a finished Discord job's result (or its failure/cancel notice) reaches the member.

A job's ``delivery`` column (migration 0005) says whether its post was made:

- ``pending``: nothing accepted yet. Queued and running jobs are pending too; only ended ones are delivered.
- ``delivered``: Discord accepted the post. Recorded right after it did, at most once (a conditional UPDATE), so
  a post is repeated only when the bot dies between Discord accepting it and this record being written.
- ``abandoned``: given up, with the reason in ``delivery_error``: the channel is gone or the bot may no longer
  post there, Discord refuses the post itself, or :data:`MAX_DELIVERY_ATTEMPTS` attempts failed.
- ``elsewhere``: the job came from another surface (the CLI prints its own results); set when it is queued.

The rules (:func:`decide`) are pure; :class:`Deliveries` is the store access the presenter uses. Discord itself
stays out of this module: the presenter turns a refused request into a :class:`PostFailure`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.jobs import Job, Origin
from bot.storage.store import Store

log = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 20
"""Failed posts of one job before it is given up (with the retry sweep every minute: about 20 minutes)."""

GONE_CODES = frozenset({10003, 10004, 50001, 50013})
"""Unknown Channel, Unknown Guild, Missing Access, Missing Permissions: posting there again cannot succeed."""


class Delivery(StrEnum):
    """Where a job's post stands."""

    PENDING = "pending"
    """Not accepted by Discord yet (or the job has not ended)."""
    DELIVERED = "delivered"
    """Discord accepted the result or the notice."""
    ABANDONED = "abandoned"
    """Given up; ``delivery_error`` says why."""
    ELSEWHERE = "elsewhere"
    """Not a Discord job: nothing to post."""


class Verdict(StrEnum):
    """What to do after a post failed."""

    RETRY = "retry"
    """Keep the job pending: the retry sweep posts it again."""
    GIVE_UP = "give_up"
    """Record the delivery as abandoned; it is never tried again."""


@dataclass(frozen=True)
class PostFailure:
    """A post Discord did not accept. ``status`` is None when no HTTP answer came (network, timeout)."""

    status: int | None
    code: int = 0
    text: str = ""

    def describe(self) -> str:
        if self.status is None:
            return f"no answer from Discord ({self.text})" if self.text else "no answer from Discord"
        detail = f" (code {self.code})" if self.code else ""
        return f"Discord answered {self.status}{detail}: {self.text}".rstrip(": ")


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class DeliveryState:
    """A job's delivery as stored."""

    job_id: int
    delivery: Delivery
    attempts: int
    error: str | None
    delivered_at: float | None


def needs_delivery(origin: Origin) -> bool:
    """True for jobs whose result is posted to Discord (the CLI and other surfaces show their own)."""
    return origin.source == "discord"


def decide(failure: PostFailure, attempts: int, max_attempts: int = MAX_DELIVERY_ATTEMPTS) -> Decision:
    """Retry or give up after the ``attempts``-th failed post of a job (the channel post, not the follow-up).

    - gone or forbidden (403, 404, or the codes in :data:`GONE_CODES`): give up at once;
    - any other 4xx but 401 and 429 (the post itself is refused, e.g. an invalid body): give up at once;
    - 401, 429, 5xx and no answer at all: retry, until ``max_attempts`` failures.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    status = failure.status
    if failure.code in GONE_CODES or status in (403, 404):
        return Decision(Verdict.GIVE_UP, f"the channel is gone or forbidden: {failure.describe()}")
    if status is not None and 400 <= status < 500 and status not in (401, 429):
        return Decision(Verdict.GIVE_UP, f"Discord refuses the post: {failure.describe()}")
    if attempts >= max_attempts:
        return Decision(Verdict.GIVE_UP, f"{attempts} attempts failed, the last: {failure.describe()}")
    return Decision(Verdict.RETRY, failure.describe())


_ENDED = "('completed', 'failed', 'cancelled')"


class Deliveries:
    """The ``delivery`` columns of the jobs table: what is pending, what was delivered, what was given up."""

    def __init__(
        self, store: Store, *, max_attempts: int = MAX_DELIVERY_ATTEMPTS, now: Callable[[], float] = time.time
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.store = store
        self.max_attempts = max_attempts
        self.now = now

    async def mark_delivered(self, job_id: int) -> bool:
        """Record that Discord accepted the job's post. True the first time; False when it was already recorded
        (or given up, or the job has not ended)."""
        sql = (
            "UPDATE jobs SET delivery = 'delivered', delivered_at = ?, delivery_error = NULL"
            f" WHERE id = ? AND delivery = 'pending' AND status IN {_ENDED} RETURNING id"
        )
        params = (self.now(), job_id)
        row = await self.store.write(lambda db: db.execute(sql, params).fetchone())
        return row is not None

    async def record_failure(self, job_id: int, failure: PostFailure) -> Decision | None:
        """Count a failed post and decide (:func:`decide`): the job stays pending or is abandoned.

        None when the job is not pending any more (delivered meanwhile, or already given up)."""

        def work(db: sqlite3.Connection) -> Decision | None:
            row = db.execute(
                f"SELECT delivery_attempts FROM jobs WHERE id = ? AND delivery = 'pending' AND status IN {_ENDED}",
                (job_id,),
            ).fetchone()
            if row is None:
                return None
            attempts = row[0] + 1
            decision = decide(failure, attempts, self.max_attempts)
            state = Delivery.ABANDONED if decision.verdict is Verdict.GIVE_UP else Delivery.PENDING
            db.execute(
                "UPDATE jobs SET delivery = ?, delivery_attempts = ?, delivery_error = ? WHERE id = ?",
                (state.value, attempts, decision.reason[:500], job_id),
            )
            return decision

        decision = await self.store.write(work)
        if decision is not None and decision.verdict is Verdict.GIVE_UP:
            log.error("gave up posting job %s: %s", job_id, decision.reason)
        elif decision is not None:
            log.warning("could not post job %s yet (it is retried): %s", job_id, decision.reason)
        return decision

    async def abandon(self, job_id: int, reason: str) -> bool:
        """Give up a pending delivery that can never be made (no channel to post to, no grid to show)."""
        sql = (
            "UPDATE jobs SET delivery = 'abandoned', delivery_attempts = delivery_attempts + 1, delivery_error = ?"
            f" WHERE id = ? AND delivery = 'pending' AND status IN {_ENDED} RETURNING id"
        )
        params = (reason[:500], job_id)
        row = await self.store.write(lambda db: db.execute(sql, params).fetchone())
        if row is not None:
            log.error("gave up posting job %s: %s", job_id, reason)
        return row is not None

    async def pending(self, *, limit: int = 100) -> list[Job]:
        """Ended Discord jobs whose post Discord has not accepted yet, oldest first."""
        rows = await self.store.fetch_all(
            f"SELECT * FROM jobs WHERE delivery = 'pending' AND status IN {_ENDED} ORDER BY id LIMIT ?", (limit,)
        )
        return [Job.from_row(row) for row in rows if needs_delivery(Origin.from_json(row["origin"]))]

    async def state(self, job_id: int) -> DeliveryState | None:
        row = await self.store.fetch_one(
            "SELECT id, delivery, delivery_attempts, delivery_error, delivered_at FROM jobs WHERE id = ?", (job_id,)
        )
        if row is None:
            return None
        return DeliveryState(row[0], Delivery(row[1]), row[2], row[3], row[4])

    async def count(self, delivery: Delivery) -> int:
        """Jobs in one delivery state (pending counts only ended jobs: those waiting for their post)."""
        ended = f" AND status IN {_ENDED}" if delivery is Delivery.PENDING else ""
        sql = f"SELECT COUNT(*) FROM jobs WHERE delivery = ?{ended}"
        return int(await self.store.fetch_value(sql, (delivery.value,)))
