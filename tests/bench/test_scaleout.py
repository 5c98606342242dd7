"""``bench.scaleout`` at a tiny scale: two local engines serve one queue, every job once; and its pure measures."""

from __future__ import annotations

import json

import pytest

from bench import scaleout
from bench.scaleout import Case, Round

SUMMARY_KEYS = {
    "engines",
    "torch_threads",
    "jobs",
    "size",
    "images_per_job",
    "steps",
    "seconds",
    "jobs_per_s",
    "per_engine_jobs",
    "engine_cpu_s_per_job",
    "cpu_cores",
    "machine_busy",
    "rounds_s",
    "rounds_others_cores",
}


@pytest.mark.slow
async def test_two_local_engines_share_the_queue() -> None:
    """Four jobs from four members on two engines of one thread each: every job completes, handed over once, both
    engines render some; the summary is plain JSON with every key."""
    measured = await scaleout.measure_local([Case("two", 2, 1)], jobs=4, steps=2, repeats=1)
    two = measured["two"]
    assert json.loads(json.dumps(two)) == two
    assert set(two) == SUMMARY_KEYS
    assert set(two["cpu_cores"]) == {"bot", "engines", "helpers", "others"}
    assert sum(two["per_engine_jobs"]) == 4
    assert all(jobs >= 1 for jobs in two["per_engine_jobs"]), two["per_engine_jobs"]
    assert two["torch_threads"] == ["1", "1"]
    assert (two["engines"], two["jobs"], two["steps"], two["size"]) == (2, 4, 2, "64x64")
    assert two["jobs_per_s"] == pytest.approx(4 / two["seconds"], rel=0.01)
    assert all(cores > 0 for cores in two["cpu_cores"]["engines"])
    assert two["engine_cpu_s_per_job"] > 0


def _case(name: str, *seconds: float) -> Case:
    case = Case(name, 1, 1)
    case.rounds = [Round(s, "64x64", 4, 8, [1], ["1"], 0.0, [s], [0.0], 0.0, 0.5, 0.0) for s in seconds]
    return case


@pytest.mark.parametrize(
    ("cases", "expected"),
    [
        (
            [_case("one", 10.0, 12.0, 11.0), _case("two", 6.0, 5.0, 5.5), _case("one_all_cores", 8.0, 9.0, 8.8)],
            {"throughput_ratio": 2.0, "throughput_ratio_best": 2.0, "ratio_vs_all_cores": 1.6},
        ),
        (
            [_case("one", 6.0), _case("two", 4.0), _case("one_all_cores", 3.0), _case("two_all_cores", 12.0)],
            {
                "throughput_ratio": 1.5,
                "throughput_ratio_best": 1.5,
                "ratio_vs_all_cores": 0.75,
                "oversubscribed_ratio": 0.25,
            },
        ),
    ],
)
def test_ratios(cases: list[Case], expected: dict[str, float]) -> None:
    """Median t(one) / t(two), the fastest rounds' too, t(one on every core) / t(two), and t(one on every core) / t(two
    on every core each) when that case ran."""
    assert scaleout.ratios(cases) == expected


@pytest.mark.parametrize(
    ("cores", "names", "threads"),
    [
        (2, ["one", "two", "one_all_cores"], [1, 1, 2]),
        (8, ["one", "two", "one_all_cores"], [4, 4, 8]),
        (1, ["one", "two", "one_all_cores"], [1, 1, 1]),
    ],
)
def test_standard_cases(cores: int, names: list[str], threads: list[int]) -> None:
    """One and two engines of half the cores each, and one engine on every core."""
    cases = scaleout.standard_cases(cores)
    assert [(case.name, case.threads) for case in cases] == list(zip(names, threads, strict=True))
    assert [case.engines for case in cases] == [1, 2, 1]


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


@pytest.mark.parametrize(
    ("bot", "engines", "helpers", "busy", "others"),
    [(0.0, [2.0, 2.0], 0.0, 0.5, 0.6), (0.5, [12.0, 12.0], 0.5, 1.0, 0.0), (0.0, [1.0], 0.0, 0.1, 0.1)],
)
def test_others_cores(bot: float, engines: list[float], helpers: float, busy: float, others: float) -> None:
    """Cores the rest of the machine used in a 10 s round on 2 cores: the busy share less what ours used, at least 0."""
    measured = Round(10.0, "64x64", 4, 8, [1], ["1"], bot, engines, [0.0] * len(engines), helpers, busy, 0.0)
    assert measured.others_cores(2) == pytest.approx(others)
