"""The credits ledger: every balance change is an append-only row, and ``users.balance`` is their running sum.

The functions here are plain sqlite3 code run inside a store write transaction (``BEGIN IMMEDIATE``, see
:meth:`bot.storage.store.Store.write`) that the caller holds, so a debit commits or
rolls back together with the job it pays for. A balance never goes negative: the update is conditional and the
schema has CHECK constraints on both ``users.balance`` and ``ledger.balance_after``. A job is debited at most once
and refunded at most once (partial unique indexes on ``ledger (job_id)``), and a refund is only ever written in the
same transaction that moves the job into a terminal state, which can happen only once.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.errors import LedgerError
from bot.scheduling.allowances import refill_due, top_up_amount
from bot.storage.store import Store
from config.policy import TierSpec
from config.settings import Settings

log = logging.getLogger(__name__)

CONSOLE_ACTOR = "console"
SYSTEM_ACTOR = "system"
CONSOLE_USER_ID = 0


class EntryKind(StrEnum):
    """Why a balance changed."""

    DEBIT = "debit"
    """A job was queued and paid for."""
    REFUND = "refund"
    """A paid job failed, was cancelled or was lost."""
    GRANT = "grant"
    """A moderator or the owner added credits."""
    TAKE = "take"
    """A moderator or the owner removed credits."""
    SET = "set"
    """A moderator or the owner set the balance to a value."""
    REFILL = "refill"
    """The tier's allowance topped the balance up to its floor."""


@dataclass(frozen=True)
class Entry:
    """One row of the ledger."""

    id: int
    user_id: int
    delta: int
    balance_after: int
    kind: EntryKind
    reason: str
    job_id: int | None
    actor: str
    created_at: float

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            delta=row["delta"],
            balance_after=row["balance_after"],
            kind=EntryKind(row["kind"]),
            reason=row["reason"],
            job_id=row["job_id"],
            actor=row["actor"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True)
class Member:
    """A member's account as the scheduler sees it."""

    user_id: int
    tier: str
    balance: int
    banned: bool
    default_lane: str
    last_refill_at: float | None

    @classmethod
    def from_row(cls, row: Any) -> Member:
        return cls(
            user_id=row["user_id"],
            tier=row["tier"],
            balance=row["balance"],
            banned=bool(row["banned"]),
            default_lane=row["default_lane"],
            last_refill_at=row["last_refill_at"],
        )


def tier_of(settings: Settings, name: str) -> TierSpec:
    """The member's tier; a tier removed from the configuration falls back to the default tier."""
    tier = settings.tiers.get(name)
    if tier is None:
        log.warning("tier %r is not configured; using %r", name, settings.credits.default_tier)
        tier = settings.tiers[settings.credits.default_tier]
    return tier


def apply(
    db: sqlite3.Connection,
    *,
    user_id: int,
    delta: int,
    kind: EntryKind,
    reason: str,
    actor: str,
    now: float,
    job_id: int | None = None,
) -> int:
    """Change a balance by ``delta`` and append the row; returns the new balance. Call inside a transaction.

    Raises LedgerError when the balance would go negative or the job already has such a row (nothing is written).
    """
    row = db.execute(
        "UPDATE users SET balance = balance + ? WHERE user_id = ? AND balance + ? >= 0 RETURNING balance",
        (delta, user_id, delta),
    ).fetchone()
    if row is None:
        current = db.execute("SELECT balance FROM users WHERE user_id = ?", (user_id,)).fetchone()
        if current is None:
            raise LedgerError(f"member {user_id} has no account yet")
        raise LedgerError(f"member {user_id} has {current[0]} credits; cannot take {-delta}")
    balance = int(row[0])
    try:
        db.execute(
            "INSERT INTO ledger (user_id, delta, balance_after, kind, reason, job_id, actor, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (user_id, delta, balance, kind.value, reason, job_id, actor, now),
        )
    except sqlite3.IntegrityError as error:
        raise LedgerError(f"job {job_id} already has a {kind.value} entry") from error
    return balance


def refund_job(db: sqlite3.Connection, job: Any, *, reason: str, actor: str, now: float) -> int:
    """Give back what a job was charged (inside the transaction that ends it). Returns the credits refunded."""
    cost = int(job["cost"])
    if cost <= 0:
        return 0
    apply(
        db,
        user_id=job["user_id"],
        delta=cost,
        kind=EntryKind.REFUND,
        reason=reason,
        actor=actor,
        now=now,
        job_id=job["id"],
    )
    return cost


def refill_member(db: sqlite3.Connection, member: Member, tier: TierSpec, now: float) -> int:
    """Top a member up to the tier's floor if due this period; returns the credits added (0 if none)."""
    if not refill_due(member.last_refill_at, now, tier.refill):
        return 0
    amount = top_up_amount(member.balance, tier)
    if amount:
        apply(
            db,
            user_id=member.user_id,
            delta=amount,
            kind=EntryKind.REFILL,
            reason=f"{tier.refill} allowance",
            actor=SYSTEM_ACTOR,
            now=now,
        )
    db.execute("UPDATE users SET last_refill_at = ? WHERE user_id = ?", (now, member.user_id))
    return amount


def ensure_member(db: sqlite3.Connection, user_id: int, settings: Settings, now: float) -> Member:
    """The member's account, created on first sight with the default tier and its first allowance."""
    row = db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
    if row is not None:
        return Member.from_row(row)
    tier_name = settings.credits.console_tier if user_id == CONSOLE_USER_ID else settings.credits.default_tier
    db.execute(
        "INSERT INTO users (user_id, created_at, tier, default_lane) VALUES (?, ?, ?, ?)",
        (user_id, now, tier_name, settings.default_lane),
    )
    member = Member(user_id, tier_name, 0, False, settings.default_lane, None)
    added = refill_member(db, member, tier_of(settings, tier_name), now)
    return Member(user_id, tier_name, added, False, settings.default_lane, now)


class Ledger:
    """Balances, history and the owner's and moderators' changes to them."""

    def __init__(self, store: Store, settings: Settings, *, now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.now = now

    async def member(self, user_id: int) -> Member:
        """The account (created with the first allowance if this member is new)."""
        now = self.now()
        return await self.store.write(lambda db: ensure_member(db, user_id, self.settings, now))

    async def find_member(self, user_id: int) -> Member | None:
        """The account, or None for a member not seen yet. Read-only: never creates anything."""
        row = await self.store.fetch_one("SELECT * FROM users WHERE user_id = ?", (user_id,))
        return None if row is None else Member.from_row(row)

    async def balance(self, user_id: int) -> int:
        value = await self.store.fetch_value("SELECT balance FROM users WHERE user_id = ?", (user_id,))
        return int(value or 0)

    async def entries(self, user_id: int, limit: int = 20) -> list[Entry]:
        """The member's most recent rows, newest first."""
        rows = await self.store.fetch_all(
            "SELECT * FROM ledger WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit)
        )
        return [Entry.from_row(row) for row in rows]

    async def grant(self, user_id: int, amount: int, *, actor: str, reason: str) -> int:
        """Add credits; returns the new balance."""
        _check_amount(amount)
        return await self._change(user_id, amount, EntryKind.GRANT, actor, reason)

    async def take(self, user_id: int, amount: int, *, actor: str, reason: str) -> int:
        """Remove credits (refused when the balance is smaller); returns the new balance."""
        _check_amount(amount)
        return await self._change(user_id, -amount, EntryKind.TAKE, actor, reason)

    async def set_balance(self, user_id: int, amount: int, *, actor: str, reason: str) -> int:
        """Set the balance to ``amount`` by appending the difference; returns the new balance."""
        if amount < 0:
            raise LedgerError(f"a balance cannot be negative (got {amount})")
        now = self.now()

        def work(db: sqlite3.Connection) -> int:
            member = ensure_member(db, user_id, self.settings, now)
            delta = amount - member.balance
            if delta == 0:
                return amount
            return apply(db, user_id=user_id, delta=delta, kind=EntryKind.SET, reason=reason, actor=actor, now=now)

        return await self.store.write(work)

    async def set_tier(self, user_id: int, tier: str, *, actor: str) -> Member:
        """Move a member to another tier and top them up to its allowance now (a floor: never piles up)."""
        if tier not in self.settings.tiers:
            raise LedgerError(f"unknown tier {tier!r}; use one of: {', '.join(sorted(self.settings.tiers))}")
        now = self.now()

        def work(db: sqlite3.Connection) -> Any:
            member = ensure_member(db, user_id, self.settings, now)
            db.execute("UPDATE users SET tier = ? WHERE user_id = ?", (tier, user_id))
            moved = Member(member.user_id, tier, member.balance, member.banned, member.default_lane, None)
            refill_member(db, moved, self.settings.tiers[tier], now)
            return db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()

        row = await self.store.write(work)
        log.info("member %s moved to tier %s by %s", user_id, tier, actor)
        return Member.from_row(row)

    async def set_banned(self, user_id: int, banned: bool, *, actor: str) -> None:
        """Ban or unban a member (a banned member's new jobs are refused; queued ones stay)."""
        now = self.now()

        def work(db: sqlite3.Connection) -> None:
            ensure_member(db, user_id, self.settings, now)
            db.execute("UPDATE users SET banned = ? WHERE user_id = ?", (int(banned), user_id))

        await self.store.write(work)
        log.info("member %s %s by %s", user_id, "banned" if banned else "unbanned", actor)

    async def refill_all(self) -> int:
        """Top up every member whose refill is due; returns how many were topped up. Safe to run any time."""
        now = self.now()

        def work(db: sqlite3.Connection) -> int:
            topped = 0
            for row in db.execute("SELECT * FROM users").fetchall():
                member = Member.from_row(row)
                if refill_member(db, member, tier_of(self.settings, member.tier), now):
                    topped += 1
            return topped

        topped = await self.store.write(work)
        if topped:
            log.info("topped up the allowance of %d member(s)", topped)
        return topped

    async def _change(self, user_id: int, delta: int, kind: EntryKind, actor: str, reason: str) -> int:
        now = self.now()

        def work(db: sqlite3.Connection) -> int:
            ensure_member(db, user_id, self.settings, now)
            return apply(db, user_id=user_id, delta=delta, kind=kind, reason=reason, actor=actor, now=now)

        return await self.store.write(work)


def _check_amount(amount: int) -> None:
    if amount <= 0:
        raise LedgerError(f"the amount must be a positive whole number of credits (got {amount})")
