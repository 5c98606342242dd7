"""Chaos: kill the engine and the whole bot with SIGKILL under load, then prove nothing was lost.

``python -m bench.chaos [--engine-kills 20] [--bot-kills 5] [--members 20] [--engines 2]``. A "core" child
process runs the real bot core (store, scheduler, one worker and engine process per engine on the tiny model,
``engine.devices = ["cpu"] * engines``) with simulated members queueing jobs at a steady rate. This process
SIGKILLs one of the engines, chosen at random, at random moments, and SIGKILLs the core and starts it again on the
same database. Then it stops the load, lets the core drain the queue, and checks: every accepted job ended
(completed with its images on disk, or failed/cancelled and refunded), and every balance equals its ledger. The
last line is one JSON object with ``jobs_accepted``, ``jobs_completed``, ``jobs_refunded``, ``jobs_lost`` (must be
0), ``ledger_drift`` (must be 0), ``engine_kills``, ``bot_kills`` and ``engines``.

With several engines on a CPU, each gets ``cores / engines`` torch threads (``OMP_NUM_THREADS``, unless set
already): OpenMP threads spinning for a sibling that another engine keeps off its core make every render several
times slower. One engine keeps torch's default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STOP_FILE = "chaos.stop"
DRAINED_FILE = "chaos.drained"


# --- the core: the real bot core under a steady load ---------------------------------------------------------


async def run_core(data_dir: Path, members: int, interval_s: float, engines: int = 1) -> None:
    from bot.actors import Actor
    from bot.application.service import ImagineService
    from bot.errors import ImagineError
    from bot.jobs import Origin, Status
    from bot.operations.logs import setup_logging
    from config.settings import Settings

    setup_logging("INFO")
    if engines > 1:  # the engines are spawned with this environment
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // engines)))
    several = {"engine": {"devices": ["cpu"] * engines}} if engines > 1 else {}  # one: as configured (a GPU)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, model="tiny", data_dir=data_dir, engine_start_timeout_s=180, job_timeout_s=120, **several
    )
    service = await ImagineService.open(settings)
    service.start()
    rng = random.Random(os.getpid())
    stop = data_dir / STOP_FILE
    while not stop.exists():
        member = rng.randrange(1, members + 1)
        prompt = f"chaos {rng.randrange(10_000)} --steps {rng.choice((2, 3, 4))} --seed {rng.randrange(2**32)}"
        with contextlib.suppress(ImagineError):  # refused (limits): nothing accepted, nothing charged
            actor = Actor(member, Origin(source="cli"))
            await service.submit(actor, await service.prepare(actor, prompt))
        await asyncio.sleep(interval_s)
    while await service.scheduler.count(Status.QUEUED) + await service.scheduler.count(Status.RUNNING):  # noqa: ASYNC110
        await asyncio.sleep(0.2)  # the worker drains the queue; the database is the truth
    await service.close()
    (data_dir / DRAINED_FILE).touch()


# --- the orchestrator ---------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _engine_pids(core: subprocess.Popen[bytes]) -> list[int]:
    """The engines are the core's spawned children that are not multiprocessing's resource tracker."""
    found: list[int] = []
    for child in _children(core.pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"multiprocessing" in command and b"resource_tracker" not in command:
            found.append(child)
    return found


def _count_ready(log: Path) -> int:
    try:
        return log.read_text(errors="replace").count("engine ready:")
    except OSError:
        return 0


def _wait_for_work(log: Path, database: Path, *, since_ready: int, limit_s: float) -> bool:
    """Wait until a freshly started engine is ready and some job is running, so a kill hits work in flight."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if _count_ready(log) <= since_ready:
            time.sleep(0.1)
            continue
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
                if db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0]:
                    return True
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    return False


def _start_core(data_dir: Path, members: int, interval_s: float, engines: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.chaos",
                "--core",
                str(data_dir),
                "--members",
                str(members),
                "--interval",
                str(interval_s),
                "--engines",
                str(engines),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )


def orchestrate(
    engine_kills: int, bot_kills: int, members: int, interval_s: float, data_dir: Path, engines: int = 1
) -> dict[str, object]:
    rng = random.Random(7)
    victims = random.Random(11)  # which engine dies: apart, so the moments of the kills are a one-engine run's
    log = data_dir / "core.log"
    core = _start_core(data_dir, members, interval_s, engines, log)
    done_engine = done_bot = 0
    readies = 0
    started = time.monotonic()
    try:
        while done_engine < engine_kills or done_bot < bot_kills:
            time.sleep(rng.uniform(1.0, 3.0))
            if core.poll() is not None:  # it ended by itself (it cannot start): no kill would ever find work
                raise RuntimeError(f"the core exited with {core.returncode} under load; see {log}")
            left_engine, left_bot = engine_kills - done_engine, bot_kills - done_bot
            if left_bot and rng.random() < left_bot / (left_engine + left_bot):
                core.send_signal(signal.SIGKILL)
                core.wait()
                done_bot += 1
                core = _start_core(data_dir, members, interval_s, engines, log)
                readies = _count_ready(log)
                continue
            if not _wait_for_work(log, data_dir / "imagine.db", since_ready=readies, limit_s=60):
                continue
            readies = _count_ready(log)
            time.sleep(rng.uniform(0.0, 0.4))  # somewhere inside the job
            running = _engine_pids(core)
            if running:
                engine = victims.choice(running)
                try:
                    os.kill(engine, signal.SIGKILL)
                    done_engine += 1
                except ProcessLookupError:
                    pass
        (data_dir / STOP_FILE).touch()
        deadline = time.monotonic() + 600
        while not (data_dir / DRAINED_FILE).exists():
            if core.poll() is not None:
                raise RuntimeError(f"the core exited with {core.returncode} before draining; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the core did not drain its queue in 600 s; see {log}")
            time.sleep(0.5)
        core.wait(timeout=60)
    finally:
        if core.poll() is None:
            core.kill()
    result = audit(data_dir)
    result.update(
        engine_kills=done_engine, bot_kills=done_bot, engines=engines, seconds=round(time.monotonic() - started, 1)
    )
    return result


def audit(data_dir: Path) -> dict[str, object]:
    """Count what happened to every accepted job and how far any balance is from its ledger."""
    from bot.operations.db_check import check_database

    database = data_dir / "imagine.db"
    with sqlite3.connect(database) as db:
        jobs = db.execute("SELECT id, status, cost FROM jobs").fetchall()
        refunded = {row[0] for row in db.execute("SELECT job_id FROM ledger WHERE kind = 'refund'")}
        images = {}
        for job_id, path in db.execute("SELECT job_id, path FROM results"):
            images.setdefault(job_id, []).append(path)
        drift = db.execute(
            "SELECT COALESCE(SUM(ABS(u.balance - COALESCE(s.total, 0))), 0) FROM users u LEFT JOIN"
            " (SELECT user_id, SUM(delta) AS total FROM ledger GROUP BY user_id) s ON s.user_id = u.user_id"
        ).fetchone()[0]
    completed = [
        job for job in jobs if job[1] == "completed" and all(Path(p).is_file() for p in images.get(job[0], ()))
    ]
    ended_refunded = [job for job in jobs if job[1] in ("failed", "cancelled") and (job[2] == 0 or job[0] in refunded)]
    lost = len(jobs) - len(completed) - len(ended_refunded)
    problems = check_database(database)
    return {
        "jobs_accepted": len(jobs),
        "jobs_completed": len(completed),
        "jobs_refunded": len(ended_refunded),
        "jobs_lost": lost,
        "ledger_drift": int(drift),
        "db_check_problems": len(problems),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine-kills", type=int, default=20)
    parser.add_argument("--bot-kills", type=int, default=5)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between two members' requests")
    parser.add_argument("--engines", type=int, default=2, help="engine processes the core runs (one queue)")
    parser.add_argument("--core", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engines < 1:
        parser.error("--engines: run at least 1 engine")
    if args.core is not None:
        asyncio.run(run_core(args.core, args.members, args.interval, args.engines))
        return
    with tempfile.TemporaryDirectory(prefix="chaos-") as folder:
        result = orchestrate(args.engine_kills, args.bot_kills, args.members, args.interval, Path(folder), args.engines)
    print(json.dumps(result))
    if result["jobs_lost"] or result["ledger_drift"] or result["db_check_problems"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
