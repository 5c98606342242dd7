"""APScheduler upkeep: started in the running loop with stable ids; each run is idempotent."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent

from bot.events import EventBus, EventKind, JobEvent
from bot.jobs import Kind, Lane, Origin, RenderParams, Status
from bot.requests.preparation import Prepared
from bot.running.maintenance import LEASE_SWEEP_JOB_ID, REFILL_JOB_ID, UPLOAD_EXPIRY_JOB_ID, Maintenance
from bot.scheduling.ledger import Ledger
from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.settings import Settings
from tests.conftest import make_settings

PARAMS = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)


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
        assert {job.id for job in apscheduler.get_jobs()} == {REFILL_JOB_ID, LEASE_SWEEP_JOB_ID, UPLOAD_EXPIRY_JOB_ID}
        maintenance.stop()
        apscheduler = maintenance.start()
        assert len(apscheduler.get_jobs()) == 3
        admission = await scheduler.admit(1, [Prepared(Kind.IMAGINE, "fox", PARAMS)], origin=Origin(), lane=Lane.FAST)
        job = admission.jobs[0].job
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


HOUR = 3600.0


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_upload_expiry_keeps_active_inputs_and_runs_through_apscheduler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The expiry job, fired by APScheduler, deletes old unused uploads and stale staging files, keeps inputs of
    queued and running jobs and recent files, logs what went, and deletes nothing more when it runs again."""
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, upload_retention_hours=1)
    store = await Store.open(tmp_path / "imagine.db")
    scheduler = Scheduler(store, settings)
    await scheduler.load()
    now = time.time()

    def aged(name: str, hours: float) -> Path:
        path = data_dir / "uploads" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"image")
        os.utime(path, (now - hours * HOUR, now - hours * HOUR))
        return path

    running_input, running_mask = aged(f"{'a' * 32}.jpg", 0.5), aged(f"{'b' * 32}.png", 5)
    queued_input, unused = aged(f"{'c' * 32}.webp", 5), aged(f"{'d' * 32}.jpg", 5)
    recent, stale = aged(f"{'e' * 32}.png", 0.5), aged(".staging/0123abcd.tmp", 2)
    inpaint = dataclasses.replace(PARAMS, init_image=str(running_input), mask_image=str(running_mask))
    admission = await scheduler.admit(1, [Prepared(Kind.INPAINT, "fox", inpaint)], origin=Origin(), lane=Lane.FAST)
    running = admission.jobs[0].job
    assert [job.id for job in await scheduler.dispatch()] == [running.id]
    img2img = dataclasses.replace(PARAMS, init_image=str(queued_input))
    admission = await scheduler.admit(1, [Prepared(Kind.IMG2IMG, "fox", img2img)], origin=Origin(), lane=Lane.FAST)
    queued = admission.jobs[0].job
    assert await scheduler.active_inputs() == {running_input, running_mask, queued_input}

    maintenance = Maintenance(Ledger(store, settings), scheduler)  # folder and retention come from the settings
    assert (maintenance.uploads_dir, maintenance.upload_retention_s) == (data_dir / "uploads", HOUR)
    runs: list[str] = []
    caplog.set_level(logging.INFO, logger="bot.running.maintenance")
    try:
        apscheduler = maintenance.start()

        def record(event: JobExecutionEvent) -> None:
            runs.append(event.job_id)

        apscheduler.add_listener(record, EVENT_JOB_EXECUTED)
        for expected_runs in (1, 2):
            apscheduler.modify_job(UPLOAD_EXPIRY_JOB_ID, next_run_time=datetime.now(UTC))
            await _until(lambda n=expected_runs: runs.count(UPLOAD_EXPIRY_JOB_ID) == n, "the upload expiry job")
            left = {path for path in (data_dir / "uploads").rglob("*") if path.is_file()}
            assert left == {running_input, running_mask, queued_input, recent}
        assert "deleted 2 expired upload(s)" in caplog.text
        assert unused.name in caplog.text and stale.name in caplog.text
        assert caplog.text.count("expired upload(s)") == 1  # the second run found nothing

        await scheduler.cancel(queued.id, "console")
        assert await maintenance.expire_uploads() == [queued_input]  # no longer an input of an active job
        assert await maintenance.expire_uploads() == []
        assert running_mask.exists()
    finally:
        maintenance.stop()
        await store.close()


async def test_a_job_cut_short_by_shutdown_logs_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Stopping while a job runs (the bot's exit during its first heartbeat) cancels it without a traceback."""
    store = await Store.open(tmp_path / "imagine.db")
    settings = make_settings(tmp_path / "data")
    scheduler = Scheduler(store, settings)
    await scheduler.load()
    maintenance = Maintenance(Ledger(store, settings), scheduler)
    started = asyncio.Event()

    async def slow_refill() -> int:
        started.set()
        await asyncio.sleep(60)
        return 0

    maintenance.refill = slow_refill  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG)
    try:
        apscheduler = maintenance.start()
        apscheduler.modify_job(REFILL_JOB_ID, next_run_time=datetime.now(UTC))
        await asyncio.wait_for(started.wait(), 10)
        maintenance.stop()
        await asyncio.sleep(0.05)  # the cancelled job's task ends
    finally:
        maintenance.stop()
        await store.close()
    assert "raised an exception" not in caplog.text and "Traceback" not in caplog.text
    assert "slow_refill stopped with the bot" in caplog.text
