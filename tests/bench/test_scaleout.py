"""``bench.scaleout`` at a tiny scale: two local engines serve one queue, every job once; and its pure measures."""

from __future__ import annotations

import json

import pytest

from bench import scaleout
from bench.scaleout import Case

SUMMARY_KEYS = {
    "engines",
    "jobs",
    "size",
    "images_per_job",
    "steps",
    "seconds",
    "rounds_s",
    "rounds_background_busy",
    "jobs_per_s",
    "per_engine_jobs",
    "torch_threads",
    "bot_cpu_share",
    "engine_cpu_share",
    "machine_busy",
    "background_busy",
}


@pytest.mark.slow
async def test_two_local_engines_share_the_queue() -> None:
    """Four jobs from four members on two engines of one thread each: every job completes, handed over once, both
    engines render some; the summary is plain JSON with every key."""
    measured = await scaleout.measure_local([Case("two", 2, 1)], jobs=4, steps=2, repeats=1)
    two = measured["two"]
    assert json.loads(json.dumps(two)) == two
    assert set(two) == SUMMARY_KEYS
    assert sum(two["per_engine_jobs"]) == 4
    assert all(jobs >= 1 for jobs in two["per_engine_jobs"]), two["per_engine_jobs"]
    assert two["torch_threads"] == ["1", "1"]
    assert (two["engines"], two["jobs"], two["steps"], two["size"]) == (2, 4, 2, "64x64")
    assert two["jobs_per_s"] == pytest.approx(4 / two["seconds"], rel=0.01)
    assert all(share > 0 for share in two["engine_cpu_share"])


def _case(seconds: float) -> dict[str, float]:
    return {"seconds": seconds}


@pytest.mark.parametrize(
    ("measured", "expected"),
    [
        (
            {"one": _case(10.0), "one_1_thread": _case(8.0), "two": _case(5.0)},
            {"throughput_ratio": 2.0, "ratio_vs_1_thread": 1.6},
        ),
        (
            {"one": _case(6.0), "one_1_thread": _case(9.0), "two": _case(4.0), "two_default_threads": _case(12.0)},
            {"throughput_ratio": 1.5, "ratio_vs_1_thread": 2.25, "oversubscribed_ratio": 0.5},
        ),
    ],
)
def test_ratios(measured: dict[str, dict[str, float]], expected: dict[str, float]) -> None:
    """t(one) / t(two), t(one thread) / t(two), and t(one) / t(two on every core) when that case ran."""
    result = scaleout.ratios(measured)
    assert {key: value for key, value in result.items() if key not in measured} == expected


@pytest.mark.parametrize(
    ("pid", "expected"),
    [
        (4242, (4242, None)),
        (None, (None, None)),
        ("imaginebot-engine-0-1a2b on host (10.0.0.2), actor pid 77, engine pid 78", (78, 77)),
        ("imaginebot-engine-0-1a2b", (None, None)),
    ],
)
def test_process_ids(pid: int | str | None, expected: tuple[int | None, int | None]) -> None:
    """A local engine's pid is its process; a Ray engine's names its actor's and its engine's processes."""
    assert scaleout.process_ids(pid) == expected


@pytest.mark.parametrize(
    ("before", "after", "share"),
    [((10.0, 20.0), (11.0, 22.0), 0.5), ((10.0, 20.0), (12.0, 22.0), 1.0), ((5.0, 9.0), (5.0, 13.0), 0.0)],
)
def test_busy_share(before: tuple[float, float], after: tuple[float, float], share: float) -> None:
    """Busy CPU seconds over all CPU seconds between two readings."""
    assert scaleout.busy_share(before, after) == share
