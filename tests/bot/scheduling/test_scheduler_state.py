"""A hypothesis state machine over random interleavings of everything that touches jobs and money.

Enqueue, dispatch, complete, fail, cancel, engine crash (lease expiry), restart (close and reopen the store,
recover), grant, take and refill run against the real Scheduler and Ledger on a real SQLite file with a fake clock.
After every step: each balance equals the sum of its ledger rows and is not negative; every job is in exactly one
state and a terminal state never changes; no job is charged or refunded twice; a refund exists exactly for paid jobs
that failed or were cancelled; the in-memory queue mirrors SQLite; and every dispatch picks what the reference
order (lane, aging, given-back, least GPU time, oldest) says.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.errors import JobNotFoundError, LedgerError, SchedulerError
from bot.jobs import Kind, Lane, Origin, RenderParams, Status
from bot.requests.preparation import Prepared
from bot.scheduling.ledger import Ledger
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.policy import SchedulerSettings, TierSpec
from config.settings import Settings

SMALL = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)
BIG = RenderParams(prompt="fox", negative_prompt="", model="sd15", width=512, height=512, steps=20, cfg=7.0, seed=1)
SETTINGS = Settings(
    _env_file=None,  # type: ignore[call-arg]
    model="tiny",
    tiers={
        "free": TierSpec(allowance=12, refill="daily", max_running=2, max_queued=4),
        "unlimited": TierSpec(allowance=0, refill="never", unlimited=True),
    },
    scheduler=SchedulerSettings(lease_s=60, max_attempts=2, relax_aging_s=120, relax_usage_unit_s=60),
)
MEMBERS = st.integers(min_value=1, max_value=4)


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp())
        self.clock = 1_800_000_000.0
        self.store: Store = self.run(Store.open(self.folder / "imagine.db"))
        self.open_scheduler()
        self.terminal: dict[int, str] = {}

    def now(self) -> float:
        return self.clock

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def open_scheduler(self) -> None:
        self.scheduler = Scheduler(self.store, SETTINGS, now=self.now)
        self.ledger = Ledger(self.store, SETTINGS, now=self.now)
        self.run(self.scheduler.load())

    def running_ids(self) -> list[int]:
        return sorted(self.scheduler.running)

    def queued_ids(self) -> list[int]:
        return sorted(self.scheduler.index.by_id)

    # --- rules ---------------------------------------------------------------------------------------

    @rule(user=MEMBERS, lane=st.sampled_from(list(Lane)), big=st.booleans())
    def enqueue(self, user: int, lane: Lane, big: bool) -> None:
        with contextlib.suppress(SchedulerError):
            prepared = [Prepared(Kind.IMAGINE, "fox", BIG if big else SMALL)]
            self.run(self.scheduler.admit(user, prepared, origin=Origin(), lane=lane))

    @rule()
    def dispatch(self) -> None:
        scheduler = self.scheduler
        for user_id in scheduler.usage.prune(self.clock):
            scheduler.index.touch(user_id)
        candidates = scheduler.index.scan(self.clock)
        jobs = self.run(scheduler.dispatch(1))
        if not candidates:
            assert jobs == []
            return
        assert [job.id for job in jobs] == [candidates[0][1].job_id], "dispatch broke lane order or fairness"

    @precondition(lambda self: self.scheduler.running)
    @rule(data=st.data(), seconds=st.integers(min_value=0, max_value=90))
    def complete(self, data: st.DataObject, seconds: int) -> None:
        job_id = data.draw(st.sampled_from(self.running_ids()))
        self.clock += seconds
        self.run(self.scheduler.complete(job_id, [], "/g.png"))

    @precondition(lambda self: self.scheduler.running)
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        self.run(self.scheduler.fail(data.draw(st.sampled_from(self.running_ids())), "render failed"))

    @precondition(lambda self: self.scheduler.running or self.scheduler.index.by_id)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.running_ids() + self.queued_ids()))
        self.run(self.scheduler.cancel(job_id, "member"))

    @rule(job_id=st.integers(min_value=1, max_value=40))
    def cancel_any(self, job_id: int) -> None:
        """Cancelling a job that ended or never existed is refused and changes nothing."""
        with contextlib.suppress(JobNotFoundError):
            self.run(self.scheduler.cancel(job_id, "member"))

    @rule()
    def engine_crash(self) -> None:
        self.clock += SETTINGS.scheduler.lease_s + 1
        self.run(self.scheduler.expire_leases())

    @rule()
    def restart(self) -> None:
        self.run(self.store.close())
        self.store = self.run(Store.open(self.folder / "imagine.db"))
        self.open_scheduler()

    @rule(user=MEMBERS, amount=st.integers(min_value=1, max_value=20))
    def grant(self, user: int, amount: int) -> None:
        self.run(self.ledger.grant(user, amount, actor="mod", reason="test"))

    @rule(user=MEMBERS, amount=st.integers(min_value=1, max_value=20))
    def take(self, user: int, amount: int) -> None:
        with contextlib.suppress(LedgerError):
            self.run(self.ledger.take(user, amount, actor="mod", reason="test"))

    @rule(hours=st.integers(min_value=1, max_value=30))
    def refill(self, hours: int) -> None:
        self.clock += hours * 3600
        self.run(self.ledger.refill_all())

    @rule(seconds=st.integers(min_value=1, max_value=200))
    def wait(self, seconds: int) -> None:
        self.clock += seconds

    # --- invariants ----------------------------------------------------------------------------------

    @invariant()
    def money_and_states_are_consistent(self) -> None:
        fetch = lambda sql: self.run(self.store.fetch_all(sql))  # noqa: E731
        assert (
            fetch(
                "SELECT user_id FROM users u WHERE balance < 0 OR balance != (SELECT COALESCE(SUM(delta), 0)"
                " FROM ledger l WHERE l.user_id = u.user_id)"
            )
            == []
        )
        assert fetch("SELECT id FROM ledger WHERE balance_after < 0") == []
        assert (
            fetch("SELECT job_id, kind FROM ledger WHERE job_id IS NOT NULL GROUP BY job_id, kind HAVING COUNT(*) > 1")
            == []
        )
        jobs = fetch(
            "SELECT j.id, j.status, j.cost,"
            " (SELECT COUNT(*) FROM ledger l WHERE l.job_id = j.id AND l.kind = 'debit') AS debits,"
            " (SELECT COUNT(*) FROM ledger l WHERE l.job_id = j.id AND l.kind = 'refund') AS refunds FROM jobs j"
        )
        queued, running = [], []
        for job in jobs:
            status = Status(job["status"])
            assert job["debits"] == (1 if job["cost"] > 0 else 0)
            refunded = job["cost"] > 0 and status in (Status.FAILED, Status.CANCELLED)
            assert job["refunds"] == (1 if refunded else 0), dict(job)
            if status.terminal:
                assert self.terminal.setdefault(job["id"], status.value) == status.value
            else:
                assert job["id"] not in self.terminal
                (queued if status is Status.QUEUED else running).append(job["id"])
        assert sorted(queued) == self.queued_ids()
        assert sorted(running) == self.running_ids()

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)


SchedulerMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSchedulerMachine = SchedulerMachine.TestCase
