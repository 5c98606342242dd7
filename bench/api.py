"""``python -m bench.api``: the native API over real HTTP, under load.

A uvicorn server in this process's event loop serves the web app (:func:`bot.operations.surfaces.web_server`, as
``python -m bot run`` serves it) on 127.0.0.1 at a free port, over the real :class:`~bot.core.ImagineService`
with its own engine process on the tiny model and a temporary data folder. Members' keys are issued as the owner's
``python -m bot apikey create`` issues them (``service.keys.issue``). The clients (:mod:`bench.api_clients`: one
``httpx.AsyncClient`` per member or subscriber) run in a child process, so this process's CPU and memory are the
server's; ``--in-loop-clients`` runs them in this event loop instead (then they share its one thread).

Two parts:

- ``sse``: :data:`SSE_JOBS` jobs are queued, then :data:`SUBSCRIBERS_PER_JOB` clients per job follow
  ``GET /api/v1/jobs/{id}/events`` with the job owner's key. Once every stream has its first event the worker
  starts and the jobs run. Each subscriber's events must come in order (``queued``, ``position``…, ``started``,
  ``progress``…, then the end). ``events_lost`` counts the state changes (``started``, and the terminal event) a
  subscriber did not get; progress events may be coalesced by design (:mod:`web.feed`) and are not counted.
  ``final_event_ms``: from the core emitting a job's terminal event to a subscriber having read it. ``rss_mb``:
  this process (the server with the core; the engine is a process of its own) before the streams open and while
  all of them are open.
- ``admissions``: :data:`ADMISSIONS` members, each with their own key and client, POST ``/api/v1/jobs`` at once
  (``asyncio.gather``) while the worker runs; latency is send → 202 of each request on an open connection (target:
  p99 ≤ :data:`TARGET_P99_MS` ms). :data:`ROUNDS` rounds of fresh members, each after the previous round's jobs
  ended; the headline is the median round by p99. ``loop_cpu_ms_per_request``: CPU of the event loop's thread
  per request in a round. The loop serves one request at a time, so a burst's last answer comes no sooner than
  requests × that CPU: it is the floor of the p99, and it varies less than the latencies with what else the
  machine runs. ``reference``: the same burst on the cheapest route that checks a key (:data:`REFERENCE_PATH`),
  the floor of the stack under the admissions (uvicorn, FastAPI, the middleware, the key check). After the rounds
  every job is waited for and the ledger is checked (``charged_once``): exactly one debit per job, of the job's
  cost, and every member's balance equal to the sum of their ledger, through ``service.admin.account`` and, for
  the whole database, a read-only SQLite connection.

Prints one JSON line per part, then one JSON object with everything as the last line::

    python -m bench.api [--admissions N] [--rounds N] [--jobs N] [--per-job N] [--in-loop-clients]
                        [--switch-interval-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import api_clients
from bench.common import quiet, running_service, tiny_settings

if TYPE_CHECKING:
    from bot.core import ImagineService, JobEvent
    from config.settings import Settings

ADMISSIONS = 200
ROUNDS = 3
SSE_JOBS = 20
SUBSCRIBERS_PER_JOB = 25
TARGET_P99_MS = 50.0
REFERENCE_PATH = "/api/v1/samplers"
"""The cheapest route that checks a key (it answers a constant list)."""
PROMPT = "a red fox in the snow --steps 1 --seed {seed}"
SSE_PROMPT = "a lighthouse at dusk --steps 4 --seed {seed}"
IMAGES = 1
"""Images per job: the renders are not what is measured, and one image each keeps the runs short."""
ADMISSION_MEMBER = 100_000
"""User id of the first admissions member (each round's members are new)."""
SSE_MEMBER = 900_000
"""User id of the first member whose job SSE subscribers follow."""
WARMUP_MEMBER = 990_000
TERMINAL = api_clients.TERMINAL
WAIT_S = 1200.0
"""How long jobs and streams may take before the benchmark gives up (renders share the CPU with the server)."""
ROOT = Path(__file__).resolve().parents[1]

Clients = Callable[[str, dict[str, Any], Callable[[], Awaitable[None]]], Awaitable[list[dict[str, Any]]]]
"""Runs a plan of :mod:`bench.api_clients` (``burst`` or ``streams``) against a base URL, awaiting the
callback once the clients are ready, and returns their results."""


# --- serving ---------------------------------------------------------------------------------------------------


def free_socket() -> socket.socket:
    """A listening socket on 127.0.0.1 at a port the system chose. Made with ``IPPROTO_TCP`` as
    :func:`~bot.operations.surfaces.bind_web_socket` makes it (from getaddrinfo): asyncio sets ``TCP_NODELAY`` only
    on such sockets, and without it each response waits out the client's delayed ACK (about 40 ms)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serving(service: ImagineService, settings: Settings) -> AsyncIterator[str]:
    """The web app over ``service`` served by uvicorn in this event loop, as ``python -m bot run`` serves it;
    yields its base URL."""
    from bot.operations.surfaces import web_server

    sock = free_socket()
    port = sock.getsockname()[1]
    server = web_server(service, settings)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name="bench-web")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the web server stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
        sock.close()


async def in_child(base_url: str, plan: dict[str, Any], ready: Callable[[], Awaitable[None]]) -> list[dict[str, Any]]:
    """Run ``plan`` in ``python -m bench.api_clients`` (see that module for the protocol)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.api_clients",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        limit=1 << 26,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write(json.dumps({"base_url": base_url, **plan}).encode() + b"\n")
        await process.stdin.drain()
        if not json.loads(await asyncio.wait_for(process.stdout.readline(), WAIT_S) or b"{}").get("ready"):
            raise RuntimeError("the clients' process ended before its clients were ready")
        await ready()
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), WAIT_S)
        if not line:
            raise RuntimeError("the clients' process ended without results")
        results: list[dict[str, Any]] = json.loads(line)["results"]
        await process.wait()
        return results
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def in_loop(base_url: str, plan: dict[str, Any], ready: Callable[[], Awaitable[None]]) -> list[dict[str, Any]]:
    """Run ``plan`` in this event loop (the clients then share the server's thread)."""
    if "burst" in plan:
        return await api_clients.burst(base_url, plan["burst"]["path"], plan["burst"]["requests"], ready)
    return await api_clients.follow_all(base_url, plan["streams"], ready)


async def issue_keys(service: ImagineService, user_ids: Sequence[int], guild_id: int) -> dict[int, str]:
    """One key per member, made as ``python -m bot apikey create`` makes it."""
    keys: dict[int, str] = {}
    for user_id in user_ids:
        issued = await service.keys.issue(user_id, guild_id=guild_id, created_by="console", label="bench")
        keys[user_id] = issued.secret
    return keys


def rss_mb() -> float:
    """This process's resident memory (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    rank = -(-len(ordered) * fraction // 1)
    return ordered[max(1, min(len(ordered), int(rank))) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of ``seconds``, in milliseconds."""
    if not seconds:
        return {}
    return {
        "p50": round(statistics.median(seconds) * 1000, 2),
        "p95": round(percentile(seconds, 0.95) * 1000, 2),
        "p99": round(percentile(seconds, 0.99) * 1000, 2),
        "max": round(max(seconds) * 1000, 2),
    }


class EndClock:
    """When the core emitted each job's terminal event (``time.monotonic``, the clients' clock too)."""

    def __init__(self) -> None:
        self.ended_at: dict[int, float] = {}

    def __call__(self, event: JobEvent) -> None:
        if event.kind.value in TERMINAL:
            self.ended_at.setdefault(event.job.id, time.monotonic())


def job_body(prompt: str, seed: int) -> dict[str, Any]:
    """A POST /api/v1/jobs body."""
    return {"prompt": prompt.format(seed=seed), "images": IMAGES}


def _guild(settings: Settings) -> int:
    return settings.web.rules_guild_id


# --- admissions -------------------------------------------------------------------------------------------------


def admitted_jobs(answers: Sequence[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """Job id → (member, cost) of every 202 answer."""
    jobs: dict[int, tuple[int, int]] = {}
    for answer in answers:
        if answer["status"] == 202:
            for job in answer["body"]["jobs"]:
                jobs[int(job["id"])] = (int(answer["user_id"]), int(job["cost"]))
    return jobs


def read_only(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True)


async def wait_ended(database: Path, job_ids: Sequence[int], limit_s: float = WAIT_S) -> dict[str, int]:
    """Wait until none of ``job_ids`` is queued or running; their count per final status."""
    marks = ",".join("?" * len(job_ids))
    deadline = time.monotonic() + limit_s
    connection = read_only(database)
    try:
        while True:
            rows = connection.execute(
                f"SELECT status, COUNT(*) FROM jobs WHERE id IN ({marks}) GROUP BY status", list(job_ids)
            ).fetchall()
            counts = {str(status): int(count) for status, count in rows}
            if not counts.get("queued") and not counts.get("running"):
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still not ended after {limit_s:.0f} s: {counts}")
            await asyncio.sleep(0.2)
    finally:
        connection.close()


async def charged_once_publicly(service: ImagineService, jobs: dict[int, tuple[int, int]]) -> bool:
    """Through the core's public face: each member's account has exactly one debit for each of their jobs, of the
    job's cost, and a balance equal to the sum of its ledger."""
    from bot.core import Actor

    console = Actor.console()
    by_member: dict[int, dict[int, int]] = {}
    for job_id, (user_id, cost) in jobs.items():
        by_member.setdefault(user_id, {})[job_id] = cost
    for user_id, costs in by_member.items():
        account = await service.admin.account(console, user_id, limit=1000)
        if account.member is None:
            return False
        for job_id, cost in costs.items():
            debits = [entry for entry in account.entries if entry.job_id == job_id and entry.kind == "debit"]
            if len(debits) != 1 or debits[0].delta != -cost:
                return False
        if account.member.balance != sum(entry.delta for entry in account.entries):
            return False
    return True


def ledger_problems(database: Path, jobs: dict[int, tuple[int, int]]) -> list[str]:
    """The whole database, read-only: what is wrong with the charges of ``jobs`` (empty: each charged once)."""
    problems: list[str] = []
    connection = read_only(database)
    try:
        rows = connection.execute(
            "SELECT job_id, COUNT(*), SUM(delta) FROM ledger WHERE kind = 'debit' AND job_id IS NOT NULL"
            " GROUP BY job_id"
        ).fetchall()
        debits = {int(job_id): (int(count), int(total)) for job_id, count, total in rows}
        stored_cost = dict(connection.execute("SELECT id, cost FROM jobs").fetchall())
        for job_id, (_user_id, cost) in jobs.items():
            count, total = debits.get(job_id, (0, 0))
            if count != 1 or total != -cost or stored_cost.get(job_id) != cost:
                problems.append(f"job {job_id}: {count} debit(s) of {total} for cost {cost}")
        drift = connection.execute(
            "SELECT COUNT(*) FROM users u WHERE u.balance < 0 OR u.balance != "
            "(SELECT COALESCE(SUM(delta), 0) FROM ledger l WHERE l.user_id = u.user_id)"
        ).fetchone()[0]
        if drift:
            problems.append(f"{drift} balance(s) differ from their ledger")
    finally:
        connection.close()
    return problems


def refunds_of(database: Path, job_ids: Sequence[int]) -> int:
    connection = read_only(database)
    try:
        marks = ",".join("?" * len(job_ids))
        sql = f"SELECT COUNT(*) FROM ledger WHERE kind = 'refund' AND job_id IN ({marks})"
        return int(connection.execute(sql, list(job_ids)).fetchone()[0])
    finally:
        connection.close()


@dataclass(frozen=True)
class Round:
    """One burst of admissions."""

    answers: list[dict[str, Any]]
    total_s: float
    loop_cpu_s: float
    process_cpu_s: float
    engine_cpu_s: float

    def summary(self) -> dict[str, Any]:
        count = len(self.answers)
        statuses: dict[str, int] = {}
        for answer in self.answers:
            statuses[str(answer["status"])] = statuses.get(str(answer["status"]), 0) + 1
        return {
            **summary_ms([answer["latency_s"] for answer in self.answers]),
            "total_ms": round(self.total_s * 1000, 1),
            "statuses": statuses,
            "loop_cpu_ms_per_request": round(self.loop_cpu_s * 1000 / count, 3) if count else None,
            "process_cpu_ms_per_request": round(self.process_cpu_s * 1000 / count, 3) if count else None,
            "engine_cpu_ms": round(self.engine_cpu_s * 1000, 1),
        }


def cpu_s_of(pid: int | None) -> float:
    """CPU seconds a process has used so far (Linux ``/proc``); 0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed_burst(
    service: ImagineService,
    base_url: str,
    clients: Clients,
    path: str,
    requests: Sequence[tuple[int, str, dict[str, Any] | None]],
) -> Round:
    """One burst of ``requests`` (see :func:`bench.api_clients.burst`), with the CPU this process and the engine
    process used meanwhile (on a CPU-only machine the engine renders the jobs just admitted on the same cores)."""
    plan = {"burst": {"path": path, "requests": list(requests)}}
    marks: dict[str, float] = {}

    async def ready() -> None:
        marks.update(loop=time.thread_time(), process=time.process_time(), engine=cpu_s_of(service.engine.pid))

    answers = await clients(base_url, plan, ready)
    loop_cpu_s, process_cpu_s = time.thread_time() - marks["loop"], time.process_time() - marks["process"]
    return Round(
        answers,
        max(item["answered_at"] for item in answers) - min(item["sent_at"] for item in answers),
        loop_cpu_s,
        process_cpu_s,
        cpu_s_of(service.engine.pid) - marks["engine"],
    )


async def admissions_part(
    service: ImagineService, base_url: str, clients: Clients, members: int, rounds: int
) -> dict[str, Any]:
    """``rounds`` bursts of ``members`` concurrent POST /api/v1/jobs, each after the previous one's jobs ended;
    then every job's charge checked."""
    database = service.settings.database_file
    measured: list[Round] = []
    jobs: dict[int, tuple[int, int]] = {}
    ended: dict[str, int] = {}
    for number in range(rounds):
        first = ADMISSION_MEMBER + number * members
        keys = await issue_keys(service, range(first, first + members), _guild(service.settings))
        bodies = [job_body(PROMPT, first + index) for index in range(members)]
        requests = [(user_id, key, body) for (user_id, key), body in zip(keys.items(), bodies, strict=True)]
        burst = await timed_burst(service, base_url, clients, "/api/v1/jobs", requests)
        measured.append(burst)
        these = admitted_jobs(burst.answers)
        jobs.update(these)
        for status, count in (await wait_ended(database, list(these)) if these else {}).items():
            ended[status] = ended.get(status, 0) + count
    summaries = [burst.summary() for burst in measured]
    cheapest = [(user_id, key, None) for user_id, key, _body in requests]  # keys known to the server by now
    reference = (await timed_burst(service, base_url, clients, REFERENCE_PATH, cheapest)).summary()
    headline = sorted(summaries, key=lambda item: item.get("p99", 0.0))[len(summaries) // 2]
    problems = ledger_problems(database, jobs)
    charged_once = bool(jobs) and not problems and await charged_once_publicly(service, jobs)
    return {
        "part": "admissions",
        "requests": members * rounds,
        "concurrent": members,
        "rounds": summaries,
        "latency_ms": {key: headline[key] for key in ("p50", "p95", "p99", "max") if key in headline},
        "total_ms": headline["total_ms"],
        "loop_cpu_ms_per_request": headline["loop_cpu_ms_per_request"],
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": "p99" in headline and headline["p99"] <= TARGET_P99_MS,
        "reference": {"route": f"GET {REFERENCE_PATH}", **reference},
        "jobs_admitted": len(jobs),
        "jobs_ended": ended,
        "refunds": refunds_of(database, list(jobs)) if jobs else 0,
        "charged_once": charged_once,
        "ledger_problems": problems[:5],
    }


# --- SSE --------------------------------------------------------------------------------------------------------


def in_order(events: Sequence[str]) -> bool:
    """queued, position…, started, progress…, then the terminal event, and nothing after it."""
    if not events or events[0] != "queued" or events[-1] not in TERMINAL or events.count("started") != 1:
        return False
    start = events.index("started")
    return all(name == "position" for name in events[1:start]) and all(
        name == "progress" for name in events[start + 1 : -1]
    )


def missing_changes(events: Sequence[str]) -> int:
    """State changes a subscriber did not get: ``started`` and the terminal event."""
    return int("started" not in events) + int(not any(name in TERMINAL for name in events))


async def sse_part(service: ImagineService, base_url: str, clients: Clients, jobs: int, per_job: int) -> dict[str, Any]:
    """``jobs`` queued jobs followed by ``per_job`` subscribers each; the worker starts once every stream is open
    (``service`` must not be started before)."""
    import httpx

    owners = [SSE_MEMBER + number for number in range(jobs)]
    keys = await issue_keys(service, owners, _guild(service.settings))
    created: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=WAIT_S) as client:
        for number, (user_id, key) in enumerate(keys.items()):
            body = job_body(SSE_PROMPT, number + 1)
            response = await client.post("/api/v1/jobs", json=body, headers=api_clients.bearer(key))
            if response.status_code != 202:
                raise RuntimeError(f"could not queue a job to follow: {response.status_code} {response.text}")
            created[int(response.json()["jobs"][0]["id"])] = user_id
    clock = EndClock()
    unsubscribe = service.events.subscribe(clock)
    memory = {"before_streams": rss_mb()}
    opened_at: list[float] = []

    async def ready() -> None:
        memory["streams_open"] = rss_mb()
        opened_at.append(time.monotonic())
        service.start()

    plan = {"streams": [(job_id, keys[user_id]) for job_id, user_id in created.items() for _ in range(per_job)]}
    started = time.monotonic()
    try:
        results = await clients(base_url, plan, ready)
    finally:
        unsubscribe()
    delays = [
        item["terminal_at"] - clock.ended_at[item["job_id"]]
        for item in results
        if item["terminal_at"] is not None and item["job_id"] in clock.ended_at
    ]
    streams = len(results)
    return {
        "part": "sse",
        "jobs": jobs,
        "subscribers": streams,
        "events_lost": sum(missing_changes(item["events"]) for item in results),
        "in_order": all(in_order(item["events"]) for item in results),
        "terminal_received": sum(item["terminal_at"] is not None for item in results),
        "events_received": sum(len(item["events"]) for item in results),
        "final_event_ms": summary_ms(delays),
        "rss_mb": {
            **memory,
            "per_stream_kib": round((memory["streams_open"] - memory["before_streams"]) * 1024 / streams, 1)
            if streams
            else None,
        },
        "open_s": round(opened_at[0] - started, 2) if opened_at else None,
        "run_s": round(time.monotonic() - opened_at[0], 2) if opened_at else None,
        "errors": [item["error"] for item in results if item["error"]][:5],
    }


# --- the whole run ----------------------------------------------------------------------------------------------


async def measure(
    service: ImagineService,
    *,
    admissions: int = ADMISSIONS,
    rounds: int = ROUNDS,
    jobs: int = SSE_JOBS,
    per_job: int = SUBSCRIBERS_PER_JOB,
    clients: Clients = in_child,
    report: Callable[[dict[str, Any]], None] = lambda part: None,
) -> dict[str, Any]:
    """Both parts on ``service``: opened, its engine ready, its worker not started (:func:`sse_part` starts it once
    the streams are open). ``report`` gets each part's result as soon as it is measured."""
    settings = service.settings
    async with serving(service, settings) as base_url:
        sse = await sse_part(service, base_url, clients, jobs, per_job)
        report(sse)
        warm_keys = await issue_keys(service, [WARMUP_MEMBER], _guild(settings))
        key = warm_keys[WARMUP_MEMBER]
        warm_up = {"path": "/api/v1/jobs", "requests": [(WARMUP_MEMBER, key, job_body(PROMPT, 0))]}

        async def nothing() -> None:
            return None

        await in_loop(base_url, {"burst": warm_up}, nothing)  # the route's first call: imports and caches
        reference = {"path": REFERENCE_PATH, "requests": [(WARMUP_MEMBER, key, None)]}
        await in_loop(base_url, {"burst": reference}, nothing)
        admitted = await admissions_part(service, base_url, clients, admissions, rounds)
        report(admitted)
    return {
        "benchmark": "api",
        "machine": f"{len(os.sched_getaffinity(0))}-core CPU, tiny model",
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "clients": "in the server's event loop" if clients is in_loop else "a child process",
        "switch_interval_ms": round(sys.getswitchinterval() * 1000, 3),
        "admissions": {key: value for key, value in admitted.items() if key != "part"},
        "sse": {key: value for key, value in sse.items() if key != "part"},
        "p99_ms": admitted["latency_ms"].get("p99"),
        "meets_target": admitted["meets_target"],
        "charged_once": admitted["charged_once"],
        "events_lost": sse["events_lost"],
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with running_service(tiny_settings()) as service:
        return await measure(
            service,
            admissions=args.admissions,
            rounds=args.rounds,
            jobs=args.jobs,
            per_job=args.per_job,
            clients=in_loop if args.in_loop_clients else in_child,
            report=lambda part: print(json.dumps(part), flush=True),
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--admissions", type=int, default=ADMISSIONS, help="concurrent POST /api/v1/jobs per round")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="bursts of admissions (each with new members)")
    parser.add_argument("--jobs", type=int, default=SSE_JOBS, help="jobs the SSE subscribers follow")
    parser.add_argument("--per-job", type=int, default=SUBSCRIBERS_PER_JOB, help="SSE subscribers per job")
    parser.add_argument("--in-loop-clients", action="store_true", help="run the clients in the server's event loop")
    parser.add_argument(
        "--switch-interval-ms", type=float, default=0.5, help="GIL switch interval (default 0.5, as `run` sets)"
    )
    arguments = parser.parse_args()
    sys.setswitchinterval(arguments.switch_interval_ms / 1000)
    quiet()
    print(json.dumps(asyncio.run(main(arguments))))
