"""The ledger on a real SQLite file: grants, takes, sets, tiers, append-only rows, idempotent refills."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.errors import LedgerError
from bot.scheduling.ledger import CONSOLE_ACTOR, EntryKind, Ledger
from bot.storage.store import Store
from config.policy import TierSpec
from config.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 3, 12, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "imagine.db")
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(store: Store, clock: Clock) -> Ledger:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return Ledger(store, settings, now=clock)


async def test_new_member_gets_the_tier_allowance(ledger: Ledger) -> None:
    """First sight: the default tier's allowance, written as a refill row."""
    member = await ledger.member(5)
    assert (member.tier, member.balance) == ("free", 100)
    assert [entry.kind for entry in await ledger.entries(5)] == [EntryKind.REFILL]


@pytest.mark.parametrize(
    ("action", "amount", "expected"),
    [("grant", 50, 150), ("take", 30, 70), ("take", 100, 0), ("set", 7, 7), ("set", 100, 100)],
)
async def test_owner_changes(ledger: Ledger, action: str, amount: int, expected: int) -> None:
    """grant, take and set append rows with the actor and reason; balance is their sum."""
    change = {"grant": ledger.grant, "take": ledger.take, "set": ledger.set_balance}[action]
    assert await change(5, amount, actor=CONSOLE_ACTOR, reason="test") == expected
    entries = await ledger.entries(5)
    assert sum(entry.delta for entry in entries) == expected
    assert entries[0].balance_after == expected
    if expected != 100:
        assert (entries[0].actor, entries[0].reason) == ("console", "test")


@pytest.mark.parametrize(
    ("action", "amount", "message"),
    [("take", 101, "cannot take 101"), ("grant", 0, "positive"), ("take", -5, "positive"), ("set", -1, "negative")],
)
async def test_refused_changes(ledger: Ledger, action: str, amount: int, message: str) -> None:
    """A balance never goes negative and amounts must be positive; nothing is written."""
    await ledger.member(5)
    change = {"grant": ledger.grant, "take": ledger.take, "set": ledger.set_balance}[action]
    with pytest.raises(LedgerError, match=message):
        await change(5, amount, actor=CONSOLE_ACTOR, reason="test")
    assert await ledger.balance(5) == 100
    assert len(await ledger.entries(5)) == 1


async def test_ledger_is_append_only(ledger: Ledger, store: Store) -> None:
    """The schema refuses to edit or delete ledger rows."""
    await ledger.member(5)
    for statement in ("UPDATE ledger SET delta = 1000", "DELETE FROM ledger"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await store.write(lambda db, sql=statement: db.execute(sql))


async def test_refill_tops_up_once_per_period(ledger: Ledger, clock: Clock) -> None:
    """A refill raises the balance to the floor once a day; repeated or late runs never grant twice."""
    await ledger.member(5)
    await ledger.take(5, 60, actor="mod", reason="test")
    assert await ledger.refill_all() == 0  # same day: already refilled at creation
    clock.now += 86_400
    assert await ledger.refill_all() == 1
    assert await ledger.balance(5) == 100
    assert await ledger.refill_all() == 0
    await ledger.take(5, 10, actor="mod", reason="test")
    assert await ledger.refill_all() == 0
    assert await ledger.balance(5) == 90
    clock.now += 10 * 86_400  # missed ten days: one top-up to the floor, not ten
    assert await ledger.refill_all() == 1
    assert await ledger.balance(5) == 100


async def test_refill_does_not_accumulate_above_floor(ledger: Ledger, clock: Clock) -> None:
    """A balance above the allowance is left alone."""
    await ledger.grant(5, 400, actor="mod", reason="event prize")
    clock.now += 86_400
    await ledger.refill_all()
    assert await ledger.balance(5) == 500


async def test_tier_change_tops_up_to_the_new_floor(store: Store, clock: Clock) -> None:
    """Moving to a bigger tier raises the balance to its allowance; unknown tiers are refused."""
    settings = Settings(
        _env_file=None,
        tiers={
            "free": TierSpec(allowance=10),
            "big": TierSpec(allowance=500),  # type: ignore[call-arg]
            "unlimited": TierSpec(unlimited=True),
        },
    )
    ledger = Ledger(store, settings, now=clock)
    member = await ledger.set_tier(5, "big", actor=CONSOLE_ACTOR)
    assert (member.tier, member.balance) == ("big", 500)
    with pytest.raises(LedgerError, match="unknown tier 'gold'"):
        await ledger.set_tier(5, "gold", actor=CONSOLE_ACTOR)
