"""Pure scheduling rules: lane rank with relax aging, the order key, retries and positions."""

from __future__ import annotations

import pytest

from bot.fairness import estimate_position, lane_rank, order_key, relax_aged, should_requeue
from bot.jobs import Lane
from config.policy import SchedulerSettings

POLICY = SchedulerSettings(relax_aging_s=300, relax_usage_unit_s=600)


@pytest.mark.parametrize(
    ("lane", "waited", "usage", "rank"),
    [
        (Lane.TURBO, 0, 0, 0),
        (Lane.FAST, 10_000, 0, 2),
        (Lane.RELAX, 299, 0, 3),
        (Lane.RELAX, 300, 0, 1),  # aged: goes before fast
        (Lane.RELAX, 300, 600, 3),  # a heavy user waits longer ...
        (Lane.RELAX, 600, 600, 1),  # ... twice as long for one usage unit
    ],
)
def test_lane_rank(lane: Lane, waited: float, usage: float, rank: int) -> None:
    """turbo, aged relax, fast, relax; heavier relax users age later."""
    assert lane_rank(lane, 1000.0, 1000.0 + waited, usage, POLICY) == rank


def test_order_inside_a_lane() -> None:
    """Given-back jobs first, then least GPU time, then oldest."""
    light_new = order_key(Lane.FAST, False, 0, 0, 0.0, 9, POLICY)
    heavy_old = order_key(Lane.FAST, False, 0, 0, 50.0, 1, POLICY)
    given_back = order_key(Lane.FAST, True, 0, 0, 99.0, 20, POLICY)
    assert sorted([heavy_old, light_new, given_back]) == [given_back, light_new, heavy_old]
    assert order_key(Lane.FAST, False, 0, 0, 5.0, 3, POLICY) < order_key(Lane.FAST, False, 0, 0, 5.0, 4, POLICY)


def test_relax_aged_and_retries() -> None:
    """Aging threshold and the attempt limit."""
    assert relax_aged(0.0, 300.0, 0.0, POLICY)
    assert not relax_aged(0.0, 299.0, 0.0, POLICY)
    assert should_requeue(2, 3) and not should_requeue(3, 3)


def test_estimate_position() -> None:
    """Jobs in earlier lanes, our own earlier jobs, and one turn of each other member per turn of ours."""
    assert estimate_position(0, 0, []) == 1
    assert estimate_position(2, 0, [5, 1]) == 5
    assert estimate_position(0, 2, [1, 5]) == 7
