"""APScheduler upkeep: started in the running loop with stable ids; each run is idempotent."""

from __future__ import annotations

from pathlib import Path

from bot.events import EventBus, EventKind, JobEvent
from bot.jobs import Kind, Lane, Origin, RenderParams, Status
from bot.ledger import Ledger
from bot.maintenance import LEASE_SWEEP_JOB_ID, REFILL_JOB_ID, Maintenance
from bot.scheduler import Scheduler
from bot.store import Store
from config.settings import Settings

PARAMS = RenderParams(prompt="fox", negative="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_jobs_have_stable_ids_and_sweep_takes_back_lost_jobs(tmp_path: Path) -> None:
    """start() registers the two jobs by id (twice is fine); the sweep requeues an expired lease and says so."""
    store = await Store.open(tmp_path / "imagine.db")
    clock = Clock()
    settings = Settings(_env_file=None, model="tiny")  # type: ignore[call-arg]
    scheduler = Scheduler(store, settings, now=clock)
    await scheduler.load()
    events = EventBus()
    seen: list[JobEvent] = []
    events.subscribe(seen.append)
    woken: list[bool] = []
    maintenance = Maintenance(
        Ledger(store, settings, now=clock), scheduler, events=events, wake=lambda: woken.append(True)
    )
    try:
        apscheduler = maintenance.start()
        assert {job.id for job in apscheduler.get_jobs()} == {REFILL_JOB_ID, LEASE_SWEEP_JOB_ID}
        maintenance.stop()
        apscheduler = maintenance.start()
        assert len(apscheduler.get_jobs()) == 2
        job = await scheduler.enqueue(
            user_id=1, kind=Kind.IMAGINE, lane=Lane.FAST, prompt="fox", params=PARAMS, origin=Origin()
        )
        await scheduler.dispatch()
        assert await maintenance.sweep_leases() == []
        clock.now += settings.scheduler.lease_s + 1
        assert await maintenance.sweep_leases() == [job.id]
        assert (await scheduler.get(job.id)).status is Status.QUEUED
        assert [event.kind for event in seen] == [EventKind.REQUEUED] and woken
        assert await maintenance.refill() == 0
    finally:
        maintenance.stop()
        await store.close()
