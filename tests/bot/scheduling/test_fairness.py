"""Pure scheduling rules: lane rank with relax aging, the order key, retries, positions, batch keys, lane SQL."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from bot.jobs import LANE_ORDER, Kind, Lane, RenderParams, engine_task
from bot.scheduling.fairness import (
    RunsAlone,
    batch_key,
    estimate_position,
    lane_order_sql,
    lane_rank,
    order_key,
    relax_aged,
    should_requeue,
)
from config.policy import SchedulerSettings
from engine.protocol import batch_key as engine_batch_key

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


FOX = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)

# (second job's kind and parameters beside an imagine job of FOX, whether the engine renders them in one call)
BATCH_PAIRS = [
    (Kind.IMAGINE, dataclasses.replace(FOX, seed=9, prompt="owl"), True),
    (Kind.REROLL, FOX, True),  # a reroll is txt2img too
    (Kind.IMAGINE, dataclasses.replace(FOX, negative_prompt="blur"), False),
    (Kind.IMAGINE, dataclasses.replace(FOX, prompt="fox <lora:ink:0.7>"), False),
    (Kind.IMAGINE, dataclasses.replace(FOX, model="sd15"), False),
    (Kind.IMAGINE, dataclasses.replace(FOX, cfg=7.0), False),
    (Kind.IMAGINE, dataclasses.replace(FOX, tile=True), False),
    (Kind.IMG2IMG, dataclasses.replace(FOX, init_image="/data/uploads/a.png"), False),
]


@pytest.mark.parametrize(("kind", "params", "together"), BATCH_PAIRS)
def test_batch_key_is_the_engines(kind: Kind, params: RenderParams, together: bool) -> None:
    """Two jobs share a dispatch key exactly when the engine's key of their tasks is one and the same."""
    engine_first = engine_batch_key(engine_task(Kind.IMAGINE, FOX))
    engine_second = engine_batch_key(engine_task(kind, params))
    assert (engine_first is not None and engine_first == engine_second) is together
    assert (batch_key(Kind.IMAGINE, FOX) == batch_key(kind, params)) is together


@pytest.mark.parametrize("kind", [Kind.IMG2IMG, Kind.INPAINT, Kind.VARIATION, Kind.UPSCALE, Kind.ZOOM, Kind.PAN])
def test_jobs_that_run_alone_never_share_a_key(kind: Kind) -> None:
    """Two identical jobs the engine runs alone get keys equal to no other, not even each other's."""
    params = dataclasses.replace(FOX, init_image="/data/uploads/a.png")
    first, second = batch_key(kind, params), batch_key(str(kind), params)
    assert isinstance(first, RunsAlone) and first != second


def test_lane_order_sql_sorts_in_order_of_service() -> None:
    """The SQL lane order, built from the lane enum, sorts turbo, fast, relax in SQLite."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE jobs (id INTEGER, lane TEXT)")
    db.executemany("INSERT INTO jobs VALUES (?, ?)", [(1, "relax"), (2, "fast"), (3, "turbo"), (4, "fast")])
    rows = db.execute(f"SELECT lane FROM jobs ORDER BY {lane_order_sql()}, id").fetchall()
    assert [row[0] for row in rows] == ["turbo", "fast", "fast", "relax"]
    assert [row[0] for row in rows] == sorted((row[0] for row in rows), key=lambda lane: LANE_ORDER[Lane(lane)])
