"""Tier allowances: when a member's balance is topped up and by how much. Pure functions of stored times.

A top-up raises the balance to the tier's allowance (a floor); it never accumulates. Whether one is due is computed
from the stored last-refill time and the start of the current period (UTC midnight, or the 1st of the month), so
a restart, a repeated run or a missed run never grants twice in one period.
"""

from __future__ import annotations

from datetime import UTC, datetime

from config.policy import TierSpec


def period_start(now: float, refill: str) -> float | None:
    """The start of the refill period that contains ``now`` (epoch seconds, UTC); None when it never refills."""
    moment = datetime.fromtimestamp(now, tz=UTC)
    if refill == "daily":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    elif refill == "monthly":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif refill == "never":
        return None
    else:
        raise ValueError(f"unknown refill period {refill!r}; use daily, monthly or never")
    return start.timestamp()


def refill_due(last_refill_at: float | None, now: float, refill: str) -> bool:
    """True when the member has not been topped up in the current period."""
    start = period_start(now, refill)
    if start is None:
        return False
    return last_refill_at is None or last_refill_at < start


def top_up_amount(balance: int, tier: TierSpec) -> int:
    """Credits that bring ``balance`` up to the tier's allowance; 0 when it is already there or above."""
    if tier.unlimited:
        return 0
    return max(0, tier.allowance - balance)
