"""Allowances: top-ups to a floor, once per period, computed from stored times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.scheduling.allowances import period_start, refill_due, top_up_amount
from config.policy import TierSpec


def ts(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("last", "now", "refill", "due"),
    [
        (None, ts(2026, 5, 3, 12), "daily", True),
        (ts(2026, 5, 3, 0, 5), ts(2026, 5, 3, 23), "daily", False),
        (ts(2026, 5, 2, 23, 59), ts(2026, 5, 3, 0, 1), "daily", True),
        (ts(2026, 5, 1, 0, 0), ts(2026, 5, 31, 23), "monthly", False),
        (ts(2026, 4, 30, 23), ts(2026, 5, 1, 0, 1), "monthly", True),
        (None, ts(2026, 5, 3), "never", False),
    ],
)
def test_refill_due(last: float | None, now: float, refill: str, due: bool) -> None:
    """Due once per UTC day or month; never for 'never'."""
    assert refill_due(last, now, refill) is due


def test_top_up_is_to_a_floor() -> None:
    """Below the allowance: raise to it; at or above: nothing (credits do not pile up)."""
    tier = TierSpec(allowance=100)
    assert top_up_amount(30, tier) == 70
    assert top_up_amount(100, tier) == 0
    assert top_up_amount(250, tier) == 0
    assert top_up_amount(0, TierSpec(allowance=100, unlimited=True)) == 0


def test_period_start_rejects_unknown() -> None:
    """A bad period name is refused with the valid ones."""
    assert period_start(ts(2026, 5, 3, 12), "monthly") == ts(2026, 5, 1)
    with pytest.raises(ValueError, match="daily, monthly or never"):
        period_start(0.0, "weekly")
