"""Dispatch simulation: the real scheduler feeding 1, 8 and 64 simulated engines from one queue of 10,000 members.

A discrete-event simulation on a virtual clock. The scheduler is the real one (:class:`Scheduler` on a real SQLite
file in a temporary folder, admission, dispatch and completion through its public API); only the engines are
simulated: each renders its batch for a time drawn from a lognormal distribution (median ``--median-s``, seeded) and
then reports it. At every engine event the clock moves to that time, the scheduler records the batch
(:meth:`Scheduler.complete`, one tiny image row per job) and dispatches the next one to that engine; engines left
without work (every queued job's member already at their running limit) ask again after the next completion, as the
worker pool's wake-up does.

The scheduler is one server, as in the bot (one event loop, one SQLite writer): the real wall time each call takes
is spent on the virtual clock as well, and an engine whose batch ends while the scheduler is busy waits for it. So
scheduler cost shows up as idle GPU time.

Workload: every member queues 1 to ``--light-jobs`` fast jobs; ``max(16, 2 × GPUs)`` of them (the heavy members)
queue ``--heavy-jobs`` each instead, all admitted before the clock starts (a full queue). Members are on a tier
with one running job each and credits for everything they queue (no refusal).

Per GPU count the JSON reports ``dispatch_us_per_job`` (wall time inside dispatch and complete per job: mean,
median, and mean over the first and last quarter of the jobs, queue full and draining), ``gpu_utilisation`` (busy
engine time over ``gpus × time`` until the queue is empty) split into ``idle_waiting_for_scheduler`` and
``idle_no_runnable_job`` (every queued job's member at their running limit), ``fairness_max_deviation`` (how far a
heavy member's share of GPU time strays from an equal share, over the scheduler's fairness window, or the whole run
when shorter, ending when the first heavy member has nothing left queued; a batch's time is shared among its jobs in
proportion to their render times) and ``invariants_ok`` (every job completed once with its image row; balances match
the ledger). ``dispatch_us_ratio`` (``_p50``): per-job scheduler cost with the most GPUs over the fewest. The last
stdout line is the JSON object.

    python -m bench.dispatch_sim [--gpus 1,8,64] [--members 10000] [--heavy-jobs 40] [--max-batch 1]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.scheduler import PARAMS, FakeClock, invariants, percentile
from bot.jobs import ImageResult, Job, Kind, Lane, Origin
from bot.requests.preparation import Prepared
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.policy import SchedulerSettings, TierSpec
from config.settings import Settings

T = TypeVar("T")

BATCH_EXTRA = 0.3
"""A batch of several jobs takes its longest job's time plus this share of the others' (batching saves GPU time)."""


@dataclass(frozen=True)
class Workload:
    """What the members queue and how long the simulated engines take."""

    members: int = 10_000
    light_jobs: int = 2
    """Each ordinary member queues 1 to this many jobs."""
    heavy_jobs: int = 40
    """Each heavy member queues this many jobs (equal demand: their fairness is measured)."""
    heavy_members: int | None = None
    """None: ``max(16, 2 × gpus)``, more heavy members than engines so they compete."""
    median_s: float = 3.0
    sigma: float = 0.4
    max_batch: int = 1
    seed: int = 7

    def heavy_for(self, gpus: int) -> int:
        return min(self.members, self.heavy_members if self.heavy_members is not None else max(16, 2 * gpus))


@dataclass
class Batch:
    """A batch on a simulated engine: its jobs, each job's render time, and when it runs (virtual seconds)."""

    jobs: list[Job]
    render_s: list[float]
    start: float
    end: float

    def job_share(self, index: int) -> float:
        """The GPU seconds of the batch that belong to its ``index``-th job (in proportion to its render time)."""
        return (self.end - self.start) * self.render_s[index] / sum(self.render_s)


@dataclass
class Tally:
    """What the simulation measured."""

    batches: list[Batch] = field(default_factory=list)
    call_s: list[float] = field(default_factory=list)
    """Wall seconds of scheduler work per completed job, in order of completion."""
    dispatch_s: list[float] = field(default_factory=list)
    complete_s: list[float] = field(default_factory=list)
    empty_dispatches: int = 0
    """Dispatches that found no runnable job while jobs were queued."""
    completed: list[int] = field(default_factory=list)
    gaps: list[tuple[float, float, bool]] = field(default_factory=list)
    """Engine idle spans (from, to, starved): starved when no runnable job was left for it meanwhile, else it only
    waited for the scheduler (busy with other engines' calls, then its own)."""
    queue_empty_at: float | None = None
    """When the last queued job was dispatched."""
    fairness_until: float | None = None
    """When a heavy member first had nothing left queued."""


def render_seconds(rng: random.Random, median_s: float, sigma: float) -> float:
    """One job's render time: lognormal around ``median_s``."""
    return rng.lognormvariate(math.log(median_s), sigma)


def batch_seconds(render_s: Sequence[float]) -> float:
    """How long a batch takes: its longest job plus :data:`BATCH_EXTRA` of the others."""
    longest = max(render_s)
    return longest + BATCH_EXTRA * (sum(render_s) - longest)


def overlap(start: float, end: float, until: float) -> float:
    """The part of ``[start, end]`` before ``until``."""
    return max(0.0, min(end, until) - start)


def utilisation(batches: Sequence[Batch], gpus: int, until: float) -> float:
    """Busy engine time before ``until`` over ``gpus × until``."""
    if until <= 0:
        return 0.0
    return sum(overlap(batch.start, batch.end, until) for batch in batches) / (gpus * until)


def idle_shares(gaps: Sequence[tuple[float, float, bool]], gpus: int, until: float) -> tuple[float, float]:
    """Engine time before ``until`` lost waiting for the scheduler, and lost with no runnable job, over
    ``gpus × until``."""
    if until <= 0:
        return 0.0, 0.0
    waiting = sum(overlap(start, end, until) for start, end, starved in gaps if not starved)
    starved = sum(overlap(start, end, until) for start, end, starved in gaps if starved)
    return waiting / (gpus * until), starved / (gpus * until)


def gpu_seconds_by_member(batches: Sequence[Batch], members: set[int], since: float, until: float) -> dict[int, float]:
    """GPU seconds each of ``members`` received between ``since`` and ``until`` (batches count in part)."""
    seconds = dict.fromkeys(members, 0.0)
    for batch in batches:
        span = batch.end - batch.start
        inside = overlap(batch.start, batch.end, until) - overlap(batch.start, batch.end, since)
        part = inside / span if span > 0 else 0.0
        for index, job in enumerate(batch.jobs):
            if job.user_id in seconds:
                seconds[job.user_id] += batch.job_share(index) * part
    return seconds


def max_deviation(seconds: Sequence[float]) -> float:
    """How far the share furthest from equal strays from it, relative to the equal share (0: perfectly equal)."""
    mean = sum(seconds) / len(seconds) if seconds else 0.0
    if mean <= 0:
        return 0.0
    return max(abs(value / mean - 1.0) for value in seconds)


def sim_settings(data_dir: Path, workload: Workload) -> Settings:
    """One running job per member, room and credits for everything each member queues."""
    most = max(workload.heavy_jobs, workload.light_jobs)
    tier = TierSpec(allowance=most * 1000, refill="daily", max_running=1, max_queued=most)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        model="tiny",
        data_dir=data_dir,
        tiers={"free": tier, "unlimited": TierSpec(unlimited=True, refill="never", allowance=0)},
        scheduler=SchedulerSettings(max_batch=workload.max_batch),
    )


class Simulation:
    """Simulated engines around a real scheduler; the scheduler's own work runs on the virtual clock too."""

    def __init__(self, scheduler: Scheduler, clock: FakeClock, gpus: int, render_s: dict[int, float]) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self.origin = clock.now
        self.gpus = gpus
        self.render_s = render_s
        self.heavy_left: dict[int, int] = {}
        """Queued jobs left per heavy member."""
        self.at = 0.0
        """When the scheduler is next free, in virtual seconds from the start."""
        self.spent_s = 0.0
        """Wall seconds spent inside the scheduler so far."""
        self.tally = Tally()
        self._events: list[tuple[float, int, int]] = []  # (batch end, sequence, engine)
        self._running: dict[int, Batch] = {}
        self._idle: deque[int] = deque(range(gpus))
        self._idle_since: dict[int, float] = {}
        self._starved: set[int] = set()
        self._sequence = 0

    async def _timed(self, work: Callable[[], Awaitable[T]], into: list[float]) -> T:
        """Run one scheduler call at the scheduler's virtual time; its wall time passes on the virtual clock."""
        self.clock.now = self.origin + self.at
        tick = time.perf_counter()
        result = await work()
        spent = time.perf_counter() - tick
        into.append(spent)
        self.spent_s += spent
        self.at += spent
        return result

    async def _fill_idle(self) -> None:
        """Idle engines ask for work, the one that just finished first, until one finds none."""
        scheduler = self.scheduler
        while self._idle and len(scheduler.index):
            jobs = await self._timed(lambda: scheduler.dispatch(scheduler.policy.max_batch), self.tally.dispatch_s)
            if not jobs:
                self.tally.empty_dispatches += 1
                self._starved.update(self._idle)
                return
            self._start(self._idle.popleft(), jobs)

    def _start(self, engine: int, jobs: list[Job]) -> None:
        idle_since = self._idle_since.pop(engine, None)
        if idle_since is not None:
            self.tally.gaps.append((idle_since, self.at, engine in self._starved))
        self._starved.discard(engine)
        render = [self.render_s[job.id] for job in jobs]
        batch = Batch(jobs, render, self.at, self.at + batch_seconds(render))
        self.tally.batches.append(batch)
        self._running[engine] = batch
        heapq.heappush(self._events, (batch.end, self._sequence, engine))
        self._sequence += 1
        for job in jobs:
            left = self.heavy_left.get(job.user_id)
            if left is not None:
                self.heavy_left[job.user_id] = left - 1
                if left == 1 and self.tally.fairness_until is None:
                    self.tally.fairness_until = self.at  # a heavy member has nothing queued any more
        if not len(self.scheduler.index) and self.tally.queue_empty_at is None:
            self.tally.queue_empty_at = self.at

    async def _record(self, job: Job) -> None:
        image = ImageResult(job.id, 0, f"/sim/{job.id}.png", job.params.seed, 64, 64)
        await self._timed(lambda: self.scheduler.complete(job.id, [image], image.path), self.tally.complete_s)
        self.tally.completed.append(job.id)

    async def run(self) -> Tally:
        """Until every queued job is rendered and recorded. The scheduler time of each engine event (recording
        its batch, dispatching after it) is spread over the batch's jobs in ``tally.call_s``."""
        await self._fill_idle()
        start_up = self.spent_s
        while self._events:
            end, _, engine = heapq.heappop(self._events)
            self.at = max(self.at, end)
            batch = self._running.pop(engine)
            before = self.spent_s
            for job in batch.jobs:
                await self._record(job)
            self._idle.appendleft(engine)
            self._idle_since[engine] = end
            await self._fill_idle()
            share = (self.spent_s - before + start_up) / len(batch.jobs)
            start_up = 0.0
            self.tally.call_s.extend([share] * len(batch.jobs))
        for engine, since in self._idle_since.items():  # idle to the end
            self.tally.gaps.append((since, self.at, engine in self._starved))
        return self.tally


async def admit_all(scheduler: Scheduler, workload: Workload, heavy: int, rng: random.Random) -> dict[int, float]:
    """Every member queues their jobs (heavy members first among equals: shuffled together with the rest);
    returns each job's render time, drawn in admission order."""
    plan = [
        (1000 + index, workload.heavy_jobs if index < heavy else rng.randint(1, workload.light_jobs))
        for index in range(workload.members)
    ]
    rng.shuffle(plan)
    render_s: dict[int, float] = {}
    for user_id, count in plan:
        prepared = [Prepared(Kind.IMAGINE, "fox", PARAMS)] * count
        admitted = await scheduler.admit(user_id, prepared, origin=Origin(), lane=Lane.FAST)
        for item in admitted.jobs:
            render_s[item.job.id] = render_seconds(rng, workload.median_s, workload.sigma)
    return render_s


def quarter_mean(values: Sequence[float], last: bool) -> float:
    """Mean of the first (or last) quarter of ``values`` (all of them when there are fewer than 4)."""
    size = max(1, len(values) // 4)
    part = values[-size:] if last else values[:size]
    return statistics.fmean(part) if part else 0.0


def us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


async def simulate(gpus: int, workload: Workload, *, progress: Callable[[str], None] = print) -> dict[str, object]:
    """One simulation with ``gpus`` engines on a fresh database; its measurements as a JSON-ready dict."""
    rng = random.Random(workload.seed)
    heavy = workload.heavy_for(gpus)
    with tempfile.TemporaryDirectory(prefix="imagine-dispatch-sim-") as folder:
        store = await Store.open(Path(folder) / "sim.db")
        try:
            clock = FakeClock()
            scheduler = Scheduler(store, sim_settings(Path(folder), workload), now=clock)
            await scheduler.load()
            tick = time.perf_counter()
            render_s = await admit_all(scheduler, workload, heavy, rng)
            jobs = len(render_s)
            progress(
                f"{gpus} GPU(s): admitted {jobs} jobs of {workload.members} members"
                f" in {time.perf_counter() - tick:.1f} s"
            )
            simulation = Simulation(scheduler, clock, gpus, render_s)
            simulation.heavy_left = {1000 + index: workload.heavy_jobs for index in range(heavy)}
            tick = time.perf_counter()
            tally = await simulation.run()
            wall_s = time.perf_counter() - tick
            completed = tally.completed
            results = await store.fetch_value("SELECT COUNT(DISTINCT job_id) FROM results")
            ok = (
                len(completed) == jobs
                and set(completed) == set(render_s)
                and results == jobs
                and await invariants(store, jobs)
            )
        finally:
            await store.close()
    makespan = max(batch.end for batch in tally.batches)
    queue_empty_at = tally.queue_empty_at if tally.queue_empty_at is not None else makespan
    fairness_until = tally.fairness_until if tally.fairness_until is not None else makespan
    # The scheduler shares GPU time fairly over its fairness window: measure over that much time (or all of it,
    # when shorter) before the first heavy member runs out of queued work.
    fairness_since = max(0.0, fairness_until - scheduler.policy.fairness_window_s)
    heavy_seconds = gpu_seconds_by_member(tally.batches, set(simulation.heavy_left), fairness_since, fairness_until)
    waiting, starved = idle_shares(tally.gaps, gpus, queue_empty_at)
    progress(f"{gpus} GPU(s): simulated {jobs} jobs ({makespan:.0f} virtual s) in {wall_s:.1f} s")
    return {
        "gpus": gpus,
        "jobs": jobs,
        "completed": len(completed),
        "heavy_members": heavy,
        "dispatch_us_per_job": us(simulation.spent_s / max(1, len(completed))),
        "dispatch_us_per_job_p50": us(statistics.median(tally.call_s)) if tally.call_s else 0.0,
        "dispatch_us_per_job_first_quarter": us(quarter_mean(tally.call_s, last=False)),
        "dispatch_us_per_job_last_quarter": us(quarter_mean(tally.call_s, last=True)),
        "dispatch_call_p50_us": us(statistics.median(tally.dispatch_s)) if tally.dispatch_s else 0.0,
        "dispatch_call_p99_us": us(percentile(tally.dispatch_s, 0.99)) if tally.dispatch_s else 0.0,
        "complete_call_p50_us": us(statistics.median(tally.complete_s)) if tally.complete_s else 0.0,
        "empty_dispatches": tally.empty_dispatches,
        "gpu_utilisation": round(utilisation(tally.batches, gpus, queue_empty_at), 4),
        "idle_waiting_for_scheduler": round(waiting, 4),
        "idle_no_runnable_job": round(starved, 4),
        "queue_empty_at_s": round(queue_empty_at, 1),
        "fairness_max_deviation": round(max_deviation(list(heavy_seconds.values())), 4),
        "fairness_window_s": [round(fairness_since, 1), round(fairness_until, 1)],
        "makespan_s": round(makespan, 1),
        "sim_wall_s": round(wall_s, 2),
        "invariants_ok": ok,
    }


async def run(gpu_counts: Sequence[int], workload: Workload) -> dict[str, object]:
    """:func:`simulate` for each GPU count; per-job scheduler cost with the most GPUs over the fewest."""
    results = [await simulate(gpus, workload) for gpus in gpu_counts]
    fewest = min(results, key=lambda result: result["gpus"])  # type: ignore[arg-type,return-value]
    most = max(results, key=lambda result: result["gpus"])  # type: ignore[arg-type,return-value]

    def ratio(key: str) -> float:
        base = float(fewest[key])  # type: ignore[arg-type]
        return round(float(most[key]) / base, 3) if base > 0 else 0.0  # type: ignore[arg-type]

    return {
        "members": workload.members,
        "heavy_jobs": workload.heavy_jobs,
        "render_median_s": workload.median_s,
        "max_batch": workload.max_batch,
        "results": {str(result["gpus"]): result for result in results},
        "dispatch_us_ratio": ratio("dispatch_us_per_job"),
        "dispatch_us_ratio_p50": ratio("dispatch_us_per_job_p50"),
        "invariants_ok": all(result["invariants_ok"] for result in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dispatch_sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gpus", default="1,8,64", help="comma-separated engine counts (default 1,8,64)")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--light-jobs", type=int, default=2, help="ordinary members queue 1 to this many jobs")
    parser.add_argument("--heavy-jobs", type=int, default=40, help="jobs each heavy member queues")
    parser.add_argument("--median-s", type=float, default=3.0, help="median render time of a job")
    parser.add_argument("--sigma", type=float, default=0.4, help="lognormal sigma of render times")
    parser.add_argument("--max-batch", type=int, default=1, help="jobs per engine batch (scheduler.max_batch)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--switch-interval-ms", type=float, default=0.5, help="GIL switch interval (default 0.5)")
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval_ms / 1000)
    workload = Workload(
        members=args.members,
        light_jobs=args.light_jobs,
        heavy_jobs=args.heavy_jobs,
        median_s=args.median_s,
        sigma=args.sigma,
        max_batch=args.max_batch,
        seed=args.seed,
    )
    gpu_counts = [int(value) for value in args.gpus.split(",") if value.strip()]
    print(json.dumps(asyncio.run(run(gpu_counts, workload))))


if __name__ == "__main__":
    main()
