"""``python -m bench.dispatch_sim`` at a tiny scale, so the simulation keeps working against the real scheduler; and
its pure measures."""

from __future__ import annotations

import json

import pytest

from bench import dispatch_sim
from bench.dispatch_sim import Batch, Workload
from bot.jobs import Job, Kind, Lane, Origin, Status

PER_GPU_KEYS = {
    "gpus",
    "jobs",
    "completed",
    "heavy_members",
    "dispatch_us_per_job",
    "dispatch_us_per_job_p50",
    "dispatch_us_per_job_first_quarter",
    "dispatch_us_per_job_last_quarter",
    "dispatch_call_p50_us",
    "dispatch_call_p99_us",
    "complete_call_p50_us",
    "empty_dispatches",
    "gpu_utilisation",
    "idle_waiting_for_scheduler",
    "idle_no_runnable_job",
    "queue_empty_at_s",
    "fairness_max_deviation",
    "fairness_window_s",
    "makespan_s",
    "sim_wall_s",
    "invariants_ok",
}


def quiet(_line: str) -> None:
    """No progress lines in tests."""


@pytest.mark.parametrize(
    ("gpus", "max_batch", "members", "heavy_jobs"),
    [(1, 1, 20, 3), (2, 1, 50, 4), (3, 2, 40, 3), (5, 1, 30, 2)],
)
async def test_every_job_is_dispatched_and_completed_once(
    gpus: int, max_batch: int, members: int, heavy_jobs: int
) -> None:
    """Every admitted job is completed once with its image row and balances match the ledger; utilisation and the
    two idle shares are fractions that add up to the whole; the result is plain JSON with every key."""
    workload = Workload(members=members, heavy_jobs=heavy_jobs, max_batch=max_batch, seed=3)
    result = await dispatch_sim.simulate(gpus, workload, progress=quiet)
    assert set(result) == PER_GPU_KEYS
    assert json.loads(json.dumps(result)) == result
    assert result["invariants_ok"] is True
    assert result["completed"] == result["jobs"] >= members
    assert result["heavy_members"] == min(members, max(16, 2 * gpus))
    utilisation = result["gpu_utilisation"]
    assert 0 < utilisation <= 1
    total = utilisation + result["idle_waiting_for_scheduler"] + result["idle_no_runnable_job"]
    assert total == pytest.approx(1.0, abs=2e-3)
    assert result["fairness_max_deviation"] >= 0
    since, until = result["fairness_window_s"]
    assert 0 <= since <= until <= result["makespan_s"]
    assert result["queue_empty_at_s"] <= result["makespan_s"]
    assert result["dispatch_us_per_job"] > 0


async def test_run_reports_each_gpu_count_and_the_ratio() -> None:
    """The report has one result per GPU count, the cost ratio of the most GPUs over the fewest, and all invariants."""
    report = await dispatch_sim.run([1, 3], Workload(members=25, heavy_jobs=2, seed=5))
    assert set(report["results"]) == {"1", "3"}  # type: ignore[arg-type]
    assert report["invariants_ok"] is True
    assert report["dispatch_us_ratio"] > 0  # type: ignore[operator]
    assert report["dispatch_us_ratio_p50"] > 0  # type: ignore[operator]
    assert json.loads(json.dumps(report)) == report


def test_same_seed_same_workload() -> None:
    """The render times are drawn from the seed: two draws with one seed agree, and they centre on the median."""
    first = dispatch_sim.random.Random(11)
    second = dispatch_sim.random.Random(11)
    draws = [dispatch_sim.render_seconds(first, 3.0, 0.4) for _ in range(2001)]
    assert draws == [dispatch_sim.render_seconds(second, 3.0, 0.4) for _ in range(2001)]
    assert sorted(draws)[1000] == pytest.approx(3.0, rel=0.1)


@pytest.mark.parametrize(
    ("render_s", "expected"),
    [([3.0], 3.0), ([3.0, 1.0], 3.3), ([2.0, 2.0, 2.0, 2.0], 3.8), ([1.0, 4.0], 4.3)],
)
def test_batch_takes_its_longest_job_plus_a_share_of_the_others(render_s: list[float], expected: float) -> None:
    """A batch costs its longest job and 0.3 of each other one."""
    assert dispatch_sim.batch_seconds(render_s) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [([], 0.0), ([0.0, 0.0], 0.0), ([5.0, 5.0, 5.0], 0.0), ([9.0, 11.0], 0.1), ([1.0, 1.0, 4.0], 1.0)],
)
def test_max_deviation_is_relative_to_the_equal_share(seconds: list[float], expected: float) -> None:
    """The share furthest from the mean, as a fraction of the mean."""
    assert dispatch_sim.max_deviation(seconds) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("spans", "gpus", "until", "expected"),
    [
        ([(0.0, 10.0)], 1, 10.0, 1.0),
        ([(0.0, 10.0)], 2, 10.0, 0.5),
        ([(0.0, 4.0), (5.0, 20.0)], 1, 10.0, 0.9),
        ([(0.0, 10.0), (0.0, 10.0)], 2, 5.0, 1.0),
        ([(0.0, 10.0)], 1, 0.0, 0.0),
    ],
)
def test_utilisation_counts_busy_time_before_the_end(
    spans: list[tuple[float, float]], gpus: int, until: float, expected: float
) -> None:
    """Busy engine time before ``until`` over ``gpus × until``; a batch running past it counts in part."""
    batches = [Batch([], [1.0], start, end) for start, end in spans]
    assert dispatch_sim.utilisation(batches, gpus, until) == pytest.approx(expected)


def test_idle_shares_split_waiting_from_starved() -> None:
    """Idle spans before the end count as waiting for the scheduler or as having no runnable job."""
    gaps = [(0.0, 1.0, False), (2.0, 6.0, True), (8.0, 12.0, True)]
    assert dispatch_sim.idle_shares(gaps, 2, 10.0) == pytest.approx((0.05, 0.3))


def job(job_id: int, user_id: int) -> Job:
    """A running job of a member, as the scheduler dispatches it."""
    return Job(job_id, user_id, Kind.IMAGINE, Status.RUNNING, Lane.FAST, "fox", dispatch_sim.PARAMS, Origin(), 0.0)


def test_batch_time_is_shared_by_render_time_within_the_window() -> None:
    """A member's GPU seconds: each batch's time split by its jobs' render times, counted only inside the window."""
    batches = [
        Batch([job(1, 7), job(2, 8)], [1.0, 3.0], 0.0, 8.0),
        Batch([job(3, 7)], [2.0], 8.0, 10.0),
        Batch([job(4, 9)], [2.0], 8.0, 10.0),
    ]
    seconds = dispatch_sim.gpu_seconds_by_member(batches, {7, 8}, 4.0, 9.0)
    assert seconds == pytest.approx({7: 1.0 + 1.0, 8: 3.0})
