"""Scheduler benchmark: 10,000 jobs from 1,000 members through enqueue, dispatch and completion.

Runs on a real SQLite file in a temporary folder, with a fake clock that advances one second per rendered job
(so fairness and aging have GPU time to work with). Prints progress lines, then one JSON object as the last line:
``enqueue_per_s``, ``dispatch_p50_ms``, ``dispatch_p99_ms``, ``jobs``, ``members``, ``invariants_ok``.

    python -m bench.scheduler [--jobs N] [--members M] [--switch-interval-ms X]

The writer connection runs on its own thread (aiosqlite), so each transaction hands the GIL back and forth once.
Python's default GIL switch interval (5 ms) then shows up as occasional multi-millisecond dispatch latencies on a
busy 2-core machine; the benchmark sets 0.5 ms (``sys.setswitchinterval``), which the bot process can do as well.
Pass ``--switch-interval-ms 5`` to measure with Python's default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bot.jobs import Kind, Lane, Origin, RenderParams
from bot.requests.preparation import Prepared
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.policy import TierSpec
from config.settings import Settings

PARAMS = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def bench_settings(data_dir: Path, per_member: int) -> Settings:
    tier = TierSpec(allowance=per_member * 10, refill="daily", max_running=1, max_queued=per_member)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        model="tiny",
        data_dir=data_dir,
        tiers={"free": tier, "unlimited": TierSpec(unlimited=True, refill="never", allowance=0)},
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def invariants(store: Store, jobs: int) -> bool:
    """Balances equal ledger sums, none negative, every job completed, one debit per charged job."""
    mismatched = await store.fetch_value(
        "SELECT COUNT(*) FROM users u WHERE u.balance != (SELECT COALESCE(SUM(delta), 0) FROM ledger l"
        " WHERE l.user_id = u.user_id) OR u.balance < 0"
    )
    completed = await store.fetch_value("SELECT COUNT(*) FROM jobs WHERE status = 'completed'")
    charged = await store.fetch_value("SELECT COUNT(*) FROM jobs WHERE cost > 0")
    debits = await store.fetch_value("SELECT COUNT(DISTINCT job_id) FROM ledger WHERE kind = 'debit'")
    refunds = await store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'refund'")
    return mismatched == 0 and completed == jobs and charged == debits and refunds == 0


async def run(jobs: int, members: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    per_member = -(-jobs // members)
    with tempfile.TemporaryDirectory() as folder:
        settings = bench_settings(Path(folder), per_member)
        store = await Store.open(Path(folder) / "bench.db")
        clock = FakeClock()
        scheduler = Scheduler(store, settings, now=clock)
        await scheduler.load()
        plan = [(1000 + index % members, rng.choices(list(Lane), weights=(1, 6, 3))[0]) for index in range(jobs)]
        rng.shuffle(plan)

        started = time.perf_counter()
        prepared = [Prepared(Kind.IMAGINE, "fox", PARAMS)]
        for user_id, lane in plan:
            await scheduler.admit(user_id, prepared, origin=Origin(), lane=lane)
        enqueue_s = time.perf_counter() - started
        print(f"enqueued {jobs} jobs in {enqueue_s:.2f} s", flush=True)

        latencies: list[float] = []
        done = 0
        while True:
            tick = time.perf_counter()
            batch = await scheduler.dispatch()
            latencies.append((time.perf_counter() - tick) * 1000)
            if not batch:
                break
            clock.now += 1.0
            for job in batch:
                await scheduler.complete(job.id, [], f"/bench/{job.id}.png")
                done += 1
        print(f"dispatched and completed {done} jobs", flush=True)
        ok = done == jobs and await invariants(store, jobs)
        await store.close()
    return {
        "enqueue_per_s": round(jobs / enqueue_s, 1),
        "dispatch_p50_ms": round(statistics.median(latencies), 3),
        "dispatch_p99_ms": round(percentile(latencies, 0.99), 3),
        "jobs": jobs,
        "members": members,
        "invariants_ok": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--switch-interval-ms", type=float, default=0.5, help="GIL switch interval (default 0.5)")
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval_ms / 1000)
    print(f"GIL switch interval {args.switch_interval_ms} ms", flush=True)
    print(json.dumps(asyncio.run(run(args.jobs, args.members, args.seed))))


if __name__ == "__main__":
    main()
