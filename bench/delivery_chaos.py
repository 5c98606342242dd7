"""Delivery chaos: SIGKILL the bot at random moments and exactly between a job's completion and its post; every
result (and every failure or cancel notice) still reaches its member once.

``python -m bench.delivery_chaos [--random-kills 5] [--completion-kills 5] [--members 6]``. A child process runs
the real bot (``ImagineBot`` with its own engine process on the tiny model) on simcord's in-memory Discord, with
members sending ``/imagine`` (and now and then ``/cancel``) through simcord, while this process kills the child:

- **random kills**: SIGKILL at a random moment after the bot is up (rendering, posting, in the start-up sweep);
- **completion kills**: the child arms a listener on the core's event bus that, on a job's COMPLETED event,
  writes a journal line and SIGKILLs its own process. The event bus calls that listener right after the bot has
  relayed the event to discord.py, whose listener task has not run yet: the job is finished and charged in
  SQLite, and its post was never made.

Why real process kills (and not an in-process teardown on one long-lived simcord Env): only a SIGKILL proves that
nothing the bot keeps in memory (the presenter's live requests, its in-flight guard, discord.py's state) is needed
to deliver; an in-process teardown would let ``finally`` blocks and cancellation handlers run. The price is that
simcord's Discord lives inside the killed process, so every generation rebuilds the same world and Discord's
memory of what was posted is kept outside it:

- **the same world**: simcord's clock starts at a fixed instant and allocates snowflakes in order, so the guild
  (pinned id), the channel and the members get the same ids in every generation (checked at start-up). The
  virtual clock is then moved a generation-sized step ahead, so interaction and message ids never repeat an
  earlier generation's.
- **a durable post journal**: a hook on simcord's HTTP router appends one line per post Discord accepted (a
  channel message, a public follow-up, a notice edited into the queued message) and fsyncs it before the answer
  returns to the bot; the orchestrator audits those lines across kills. The hook also refuses a share of result
  follow-ups and notice edits (401/50027, 404/10015, 503) and of channel posts (503), so the fallbacks and the
  retries run under the kills.
  A second hook journals each delivery the bot records, and the orchestrator journals each kill: a repeated post
  is allowed (and counted apart) only when a kill fell between Discord accepting the post and the bot recording
  it, the one window at-least-once delivery leaves open.

At the end the load stops, the child drains the queue and every pending post, and this process audits: jobs
(``jobs_lost``, ``ledger_drift``, db check) as ``bench.chaos`` does, and posts: ``results_undelivered`` (an ended
job with no accepted post), ``results_duplicated`` (a job posted twice without a kill in that window). The last
line is one JSON object; both of those and ``jobs_lost`` and ``ledger_drift`` must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

JOURNAL = "posts.jsonl"
ARM_FILE = "kill-at-completion"
STOP_FILE = "delivery-chaos.stop"
DRAINED_FILE = "delivery-chaos.drained"
WORLD_FILE = "world.json"
GUILD_ID = 1_111_111_111_111_111_111
GENERATION_CLOCK_STEP_S = 10_000_000.0
"""Virtual seconds between two generations' clocks: far more than one generation ever advances."""
ADVANCE_S = 2.0
"""Virtual seconds the child advances after each request: the retry sweep runs every 30 requests and a job still
waiting after 420 requests is past its interaction token (its result goes to the channel)."""
DRAIN_ADVANCE_S = 20.0
"""Virtual seconds per step while draining: pending posts are retried every few steps."""
SETTLE_TIMEOUT_S = 10.0
"""simcord waits this long for the bot to settle; timers further out count as parked (a long limit would make
every request wait for the next APScheduler run)."""
TAG = re.compile(r"\bc(\d+)x(\d+)\b")
"""Every prompt carries a unique tag ``c<generation>x<n>``; posts are matched to jobs through it."""
REFUSALS = ((401, 50027, "Invalid Webhook Token"), (404, 10015, "Unknown Webhook"), (503, 0, "Service Unavailable"))


# --- the journal ----------------------------------------------------------------------------------------------


class Journal:
    """Append-only JSON lines, each one fsync'd before :meth:`write` returns (it survives a SIGKILL after it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, **entry: Any) -> None:
        entry["t"] = time.time()
        os.write(self._fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    if not path.exists():
        return entries
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by a kill mid-write is not a post
            entries.append(json.loads(line))
    return entries


# --- the bot child --------------------------------------------------------------------------------------------


def _post_kind(method: str, path: str, body: Any) -> str | None:
    """Which delivery a REST call is, if any: a channel message, a public follow-up, a notice edit."""
    data = body if isinstance(body, dict) else {}
    parts = path.strip("/").split("/")
    if method == "POST" and len(parts) == 3 and parts[0] == "channels" and parts[2] == "messages":
        return "channel"
    if method == "POST" and len(parts) == 3 and parts[0] == "webhooks" and not int(data.get("flags") or 0) & 64:
        return "followup"
    content = str(data.get("content") or "")
    if method == "PATCH" and parts[0] == "webhooks" and "messages" in parts and content.startswith("❌"):
        return "edit"
    return None


def install_post_journal(journal: Journal, generation: int, refuse_rate: float, rng: random.Random) -> None:
    """Journal every post simcord's Discord accepts (fsync'd before the bot hears back); refuse a share of them."""
    from simcord.backend.errors import BackendError
    from simcord.http import router

    original = router.dispatch

    def dispatch(backend: Any, method: str, path: str, *, json: Any | None = None, **kwargs: Any) -> Any:
        kind = _post_kind(method, path, json)
        if kind is None:
            return original(backend, method, path, json=json, **kwargs)
        content = str((json or {}).get("content") or "")
        match = TAG.search(content)
        if match and rng.random() < refuse_rate:
            status, code, message = rng.choice(REFUSALS) if kind != "channel" else (503, 0, "Service Unavailable")
            journal.write(event="refused", gen=generation, via=kind, tag=match.group(0), status=status, code=code)
            raise BackendError(status, code, message)
        result = original(backend, method, path, json=json, **kwargs)
        if match:
            journal.write(event="post", gen=generation, via=kind, tag=match.group(0), notice="❌" in content)
        return result

    router.dispatch = dispatch


def install_record_journal(journal: Journal, generation: int) -> None:
    """Journal each delivery the bot records (after its conditional UPDATE committed)."""
    from bot.running.delivery import Deliveries

    original = Deliveries.mark_delivered

    async def mark_delivered(self: Deliveries, job_id: int) -> bool:
        recorded = await original(self, job_id)
        if recorded:
            journal.write(event="recorded", gen=generation, job=job_id)
        return recorded

    Deliveries.mark_delivered = mark_delivered  # type: ignore[method-assign]


@dataclass
class World:
    members: list[Any]
    channel: Any
    ids: dict[str, Any]


def build_world(env: Any, members: int) -> World:
    """The same guild, channel and members in every generation (simcord allocates ids in order)."""
    guild = env.create_guild("Chaos", id=GUILD_ID)
    channel = guild.create_text_channel("art")
    people = [guild.add_member(env.create_user(f"member{index}")) for index in range(members)]
    ids = {"guild": guild.id, "channel": channel.id, "members": [person.id for person in people]}
    return World(people, channel, ids)


async def run_bot(data_dir: Path, generation: int, members: int, interval_s: float, refuse_rate: float) -> None:
    import simcord

    from bot.discord_surface.discord_bot import ImagineBot
    from bot.events import EventKind, JobEvent
    from bot.operations.logs import setup_logging
    from config.settings import Settings

    setup_logging("INFO")
    rng = random.Random(os.getpid())
    journal = Journal(data_dir / JOURNAL)
    install_post_journal(journal, generation, refuse_rate, rng)
    install_record_journal(journal, generation)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        model="tiny",
        data_dir=data_dir,
        # Engine timers run on simcord's virtual clock here (they wait inside external_wait), which the load
        # advances by minutes: only a real death ends an engine.
        engine_start_timeout_s=10**9,
        job_timeout_s=10**9,
    )
    bot = ImagineBot(settings)
    env = simcord.Env(bot, check_errors=False, settle_timeout=SETTLE_TIMEOUT_S)
    bot.external_wait = env.external_wait
    world = build_world(env, members)
    _check_world(data_dir / WORLD_FILE, world.ids)
    env.backend.advance_clock(generation * GENERATION_CLOCK_STEP_S)  # new interaction/message ids every run
    await env.start()

    arm = data_dir / ARM_FILE

    def kill_at_completion(event: JobEvent) -> None:
        if event.kind is EventKind.COMPLETED and arm.exists():
            journal.write(event="kill-at-completion", gen=generation, job=event.job.id)
            os.kill(os.getpid(), signal.SIGKILL)

    bot.service.events.subscribe(kill_at_completion)  # after the bot's relay: the presenter has not run yet
    journal.write(event="ready", gen=generation, pid=os.getpid())
    stop = data_dir / STOP_FILE
    count = 0
    while not stop.exists():
        member = rng.choice(world.members)
        count += 1
        tag = f"c{generation}x{count}"
        with contextlib.suppress(Exception):  # a refusal (limits) is an ephemeral answer, not a failure
            if rng.random() < 0.1 and (job_id := await _latest_queued(bot, member.id)) is not None:
                await member.slash(world.channel, "cancel", job=job_id)
            else:
                steps = rng.choice((2, 3, 4))
                await member.slash(world.channel, "imagine", prompt=f"chaos {tag} --steps {steps} --seed {count}")
        await _advance(env, ADVANCE_S)
        await _work(env, interval_s)
    await _drain(env, bot)
    journal.write(event="drained", gen=generation, bot_errors=len(env.errors), pid=os.getpid())
    await env.shutdown()
    await bot.service.close()  # simcord detaches a bot without bot.close(); this stops its upkeep too
    (data_dir / DRAINED_FILE).touch()


def _check_world(path: Path, ids: dict[str, Any]) -> None:
    """Every generation must see the ids of the first one (else old jobs would point at nothing)."""
    if path.exists():
        first = json.loads(path.read_text())
        if first != ids:
            raise RuntimeError(f"simcord allocated other ids than in the first run: {ids} != {first}")
    else:
        path.write_text(json.dumps(ids))


async def _latest_queued(bot: Any, user_id: int) -> int | None:
    rows = await bot.service.store.fetch_all(
        "SELECT id FROM jobs WHERE user_id = ? AND status = 'queued' ORDER BY id DESC LIMIT 1", (user_id,)
    )
    return int(rows[0][0]) if rows else None


async def _work(env: Any, seconds: float) -> None:
    """Let the bot work for ``seconds`` of real time, settling all along as the tests' ``wait_until`` does
    (simcord runs parts of the bot's work, such as completed thread hand-offs, while it settles)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        with contextlib.suppress(TimeoutError):
            await env.settle()
        await asyncio.sleep(0.05)


async def _advance(env: Any, seconds: float) -> None:
    try:
        await env.advance_time(seconds)
    except TimeoutError as error:  # a slow moment on a busy machine; the next step catches up
        print(f"advance_time: {error}", file=sys.stderr, flush=True)


async def _drain(env: Any, bot: Any) -> None:
    """Advance until no job waits to run and no ended job waits for its post."""
    from bot.jobs import Status

    while True:
        active = await bot.service.scheduler.count(Status.QUEUED) + await bot.service.scheduler.count(Status.RUNNING)
        waiting = len(await bot.deliveries.pending())
        if not active and not waiting:
            return
        await _advance(env, DRAIN_ADVANCE_S)
        await _work(env, 0.3)


# --- the orchestrator -----------------------------------------------------------------------------------------


def _start_bot(data_dir: Path, generation: int, args: argparse.Namespace, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.delivery_chaos",
                "--bot",
                str(data_dir),
                "--generation",
                str(generation),
                "--members",
                str(args.members),
                "--interval",
                str(args.interval),
                "--refuse-rate",
                str(args.refuse_rate),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )


def _wait_ready(journal: Path, generation: int, child: subprocess.Popen[bytes], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if any(e.get("event") == "ready" and e.get("gen") == generation for e in read_journal(journal)):
            return
        if child.poll() is not None:
            raise RuntimeError(f"the bot of generation {generation} exited with {child.returncode} before it was up")
        time.sleep(0.1)
    raise RuntimeError(f"the bot of generation {generation} was not up within {limit_s:.0f} s")


def orchestrate(args: argparse.Namespace, data_dir: Path) -> dict[str, object]:
    rng = random.Random(args.seed)
    log = data_dir / "bot.log"
    journal_path = data_dir / JOURNAL
    journal = Journal(journal_path)
    plan = ["random"] * args.random_kills + ["completion"] * args.completion_kills
    rng.shuffle(plan)
    kills: dict[str, int] = defaultdict(int)
    generation = 0
    started = time.monotonic()
    child = _start_bot(data_dir, generation, args, log)
    try:
        for how in plan:
            _wait_ready(journal_path, generation, child, limit_s=300)
            if how == "random":
                time.sleep(rng.uniform(0.0, args.max_random_delay))
                child.send_signal(signal.SIGKILL)
                child.wait()
            else:
                (data_dir / ARM_FILE).touch()
                try:
                    child.wait(timeout=args.completion_wait)
                except subprocess.TimeoutExpired:
                    how = "random"  # no job ended in time: kill it anyway, counted as a random kill
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                finally:
                    (data_dir / ARM_FILE).unlink(missing_ok=True)
            kills[how] += 1
            journal.write(event="killed", gen=generation, how=how, code=child.returncode)
            generation += 1
            child = _start_bot(data_dir, generation, args, log)
        _wait_ready(journal_path, generation, child, limit_s=300)
        time.sleep(args.final_load_s)
        (data_dir / STOP_FILE).touch()
        child.wait(timeout=600)
        if not (data_dir / DRAINED_FILE).exists():
            raise RuntimeError(f"the last bot exited with {child.returncode} before draining; see {log}")
    finally:
        if child.poll() is None:
            child.kill()
        journal.close()
    result = audit(data_dir)
    result.update(
        random_kills=kills["random"],
        completion_kills=kills["completion"],
        generations=generation + 1,
        seconds=round(time.monotonic() - started, 1),
    )
    return result


def audit(data_dir: Path) -> dict[str, object]:
    """Jobs and money (as bench.chaos), then posts: every ended job posted once, repeats only inside a kill."""
    from bench.chaos import audit as audit_jobs

    result = audit_jobs(data_dir)
    with sqlite3.connect(data_dir / "imagine.db") as db:
        jobs = db.execute("SELECT id, status, prompt, delivery FROM jobs").fetchall()
    by_tag = {match.group(0): job_id for job_id, _s, prompt, _d in jobs if (match := TAG.search(prompt))}
    entries = read_journal(data_dir / JOURNAL)
    posts: dict[int, list[int]] = defaultdict(list)  # job id -> journal positions of its accepted posts
    recorded: dict[int, list[int]] = defaultdict(list)
    killed: list[int] = []
    for position, entry in enumerate(entries):
        if entry["event"] == "post" and entry["tag"] in by_tag:
            posts[by_tag[entry["tag"]]].append(position)
        elif entry["event"] == "recorded":
            recorded[entry["job"]].append(position)
        elif entry["event"] == "killed":
            killed.append(position)
    ended = [job_id for job_id, status, _p, _d in jobs if status in ("completed", "failed", "cancelled")]
    undelivered = [job_id for job_id in ended if not posts.get(job_id)]
    duplicated = in_kill_window = 0
    for job_id, positions in posts.items():
        for first, second in pairwise(positions):
            unrecorded = not any(first < mark < second for mark in recorded.get(job_id, ()))
            if unrecorded and any(first < kill < second for kill in killed):
                in_kill_window += 1
            else:
                duplicated += 1
    at_completion = [e["job"] for e in entries if e["event"] == "kill-at-completion"]
    states = defaultdict(int)
    for _id, status, _p, delivery in jobs:
        if status in ("completed", "failed", "cancelled"):
            states[delivery] += 1
    drained = [e for e in entries if e["event"] == "drained"]
    refusals: dict[str, int] = defaultdict(int)
    for entry in entries:
        if entry["event"] == "refused":
            refusals[entry["via"]] += 1
    result.update(
        results_posted=sum(len(p) for p in posts.values()),
        results_undelivered=len(undelivered),
        results_duplicated=duplicated,
        duplicates_in_kill_window=in_kill_window,
        killed_at_completion_delivered=sum(1 for job_id in at_completion if posts.get(job_id)),
        deliveries_abandoned=states["abandoned"],
        deliveries_pending=states["pending"],
        bot_errors_last_run=drained[-1]["bot_errors"] if drained else None,
        posts_refused=dict(refusals),
    )
    if undelivered:
        result["undelivered_jobs"] = undelivered[:20]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--random-kills", type=int, default=5)
    parser.add_argument("--completion-kills", type=int, default=5)
    parser.add_argument("--members", type=int, default=6)
    parser.add_argument("--interval", type=float, default=0.3, help="real seconds between two requests")
    parser.add_argument("--refuse-rate", type=float, default=0.15, help="share of posts simcord refuses")
    parser.add_argument("--max-random-delay", type=float, default=12.0, help="seconds a random kill waits at most")
    parser.add_argument("--completion-wait", type=float, default=120.0, help="seconds to wait for a job to end")
    parser.add_argument("--final-load-s", type=float, default=10.0, help="seconds of load after the last kill")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it: database, journal, bot log")
    parser.add_argument("--bot", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generation", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bot is not None:
        asyncio.run(run_bot(args.bot, args.generation, args.members, args.interval, args.refuse_rate))
        return
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        result = orchestrate(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="delivery-chaos-") as folder:
            result = orchestrate(args, Path(folder))
    print(json.dumps(result))
    failed = ("jobs_lost", "ledger_drift", "db_check_problems", "results_undelivered", "results_duplicated")
    if any(result[key] for key in failed):
        sys.exit(1)


if __name__ == "__main__":
    main()
