"""Model affinity and the ETA with several engines: the pure rules, and the scheduler applying them."""

from __future__ import annotations

import dataclasses

import pytest

from bot.jobs import Kind, Lane, Origin, RenderParams
from bot.requests.preparation import Prepared
from bot.scheduling.affinity import Affinity, eta_seconds
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from tests.bot.scheduling.common import Clock, make

TINY = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)
XL = dataclasses.replace(TINY, model="tiny-sdxl")


@pytest.mark.parametrize(
    ("loaded", "elsewhere", "model", "suits"),
    [
        ({"tiny"}, set(), "tiny", True),  # loaded here
        ({"tiny"}, {"sdxl"}, "sdxl", False),  # another free engine holds it: leave it there
        (set(), set(), "sdxl", True),  # nobody holds it: a free engine loads it rather than wait
        ({"sdxl"}, {"sdxl"}, "sdxl", True),  # held here too
        ({"tiny"}, {"other"}, "sdxl", True),  # held nowhere free
    ],
)
def test_affinity_suits(loaded: set[str], elsewhere: set[str], model: str, suits: bool) -> None:
    """A job suits an engine unless only another free engine holds its model."""
    assert Affinity(frozenset(loaded), frozenset(elsewhere)).suits(model) is suits


@pytest.mark.parametrize(
    ("position", "engines", "expected"),
    [(1, 1, 10.0), (3, 1, 30.0), (1, 2, 10.0), (2, 2, 10.0), (3, 2, 20.0), (8, 4, 20.0), (9, 4, 30.0), (5, 0, 50.0)],
)
def test_eta_counts_rounds_of_engines(position: int, engines: int, expected: float) -> None:
    """The jobs ahead start in rounds of as many as there are engines."""
    assert eta_seconds(position, engines, 10.0) == expected


async def put(scheduler: Scheduler, user_id: int, params: RenderParams) -> int:
    admission = await scheduler.admit(user_id, [Prepared(Kind.IMAGINE, "fox", params)], origin=Origin(), lane=Lane.FAST)
    return admission.jobs[0].job.id


async def test_the_next_job_is_left_to_the_free_engine_holding_its_model(store: Store, clock: Clock) -> None:
    """An engine holding tiny gets nothing while the next job is tiny-sdxl and a free engine holds tiny-sdxl; that
    engine takes it, and then the first engine gets the tiny job after it."""
    scheduler = await make(store, clock)
    xl_job = await put(scheduler, 1, XL)
    tiny_job = await put(scheduler, 2, TINY)
    holds_tiny = Affinity(frozenset({"tiny"}), frozenset({"tiny-sdxl"}))
    holds_xl = Affinity(frozenset({"tiny-sdxl"}), frozenset({"tiny"}))
    assert await scheduler.dispatch(1, affinity=holds_tiny) == []
    assert [job.id for job in await scheduler.dispatch(1, affinity=holds_xl)] == [xl_job]
    assert [job.id for job in await scheduler.dispatch(1, affinity=holds_tiny)] == [tiny_job]


async def test_with_no_free_holder_the_next_job_goes_to_whoever_asks(store: Store, clock: Clock) -> None:
    """No other free engine holds the next job's model: the asking engine takes it (and batches alike)."""
    scheduler = await make(store, clock)
    first = await put(scheduler, 1, XL)
    second = await put(scheduler, 2, XL)
    busy_elsewhere = Affinity(frozenset({"tiny"}), frozenset())
    assert [job.id for job in await scheduler.dispatch(4, affinity=busy_elsewhere)] == [first, second]


async def test_eta_divides_by_the_engines(store: Store, clock: Clock) -> None:
    """Four queued jobs and two engines: the fourth is done after two rounds of the mean job time."""
    scheduler = await make(store, clock)
    await put(scheduler, 9, TINY)
    [job] = await scheduler.dispatch(1)
    clock.now += 10
    await scheduler.complete(job.id, [], "/g.png")
    ids = [await put(scheduler, user_id, TINY) for user_id in (1, 2, 3, 4)]
    assert scheduler.eta_s(ids[3]) == 40.0
    scheduler.engines = 2
    assert scheduler.eta_s(ids[3]) == 20.0
