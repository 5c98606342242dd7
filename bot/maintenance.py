"""Background upkeep on APScheduler 3.x: allowance top-ups, the lease-expiry sweep and upload expiry.

The scheduler must be started inside the running event loop (the bot's ``setup_hook``). Jobs have stable ids and
``replace_existing=True``, and each one is idempotent (a refill compares stored last-refill times with the current
period; a sweep looks at stored lease times; expiry looks at file times and the jobs still queued or running), so
a restart, a missed run or a repeated run never grants twice nor deletes what a job still needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.events import EventBus, EventKind, JobEvent
from bot.ledger import Ledger
from bot.scheduler import Scheduler
from bot.uploads import expire_uploads

log = logging.getLogger(__name__)

REFILL_JOB_ID = "imaginebot:refill-allowances"
LEASE_SWEEP_JOB_ID = "imaginebot:expire-leases"
UPLOAD_EXPIRY_JOB_ID = "imaginebot:expire-uploads"
UPLOAD_EXPIRY_EVERY_S = 3600.0
"""How often expired uploads are looked for: an upload lives at most its retention plus this."""
LOGGED_NAMES = 20


class Maintenance:
    """The periodic jobs; :meth:`start` inside the running loop, :meth:`stop` on shutdown.

    Uploads live in ``uploads_dir`` (default ``data_dir/uploads``) and are kept ``upload_retention_s`` after their
    last use (default ``upload_retention_hours`` of the scheduler's settings).
    """

    def __init__(
        self,
        ledger: Ledger,
        scheduler: Scheduler,
        *,
        events: EventBus | None = None,
        wake: Callable[[], None] | None = None,
        uploads_dir: Path | None = None,
        upload_retention_s: float | None = None,
    ) -> None:
        self.ledger = ledger
        self.scheduler = scheduler
        self.events = events
        self._wake = wake
        settings = scheduler.settings
        self.uploads_dir = uploads_dir if uploads_dir is not None else settings.data_dir / "uploads"
        self.upload_retention_s = (
            upload_retention_s if upload_retention_s is not None else settings.upload_retention_hours * 3600.0
        )
        self.apscheduler: AsyncIOScheduler | None = None

    async def refill(self) -> int:
        """Top up every member whose allowance is due; safe to run any number of times."""
        try:
            return await self.ledger.refill_all()
        except Exception:
            log.exception("the allowance refill failed; it is retried on the next run")
            return 0

    async def sweep_leases(self) -> list[int]:
        """Take back running jobs whose lease expired (requeue, or fail and refund after max attempts)."""
        try:
            handled = await self.scheduler.expire_leases()
        except Exception:
            log.exception("the lease sweep failed; it is retried on the next run")
            return []
        if handled:
            log.warning("took back %d job(s) whose lease expired: %s", len(handled), handled)
            for job_id in handled:
                job = await self.scheduler.get(job_id)
                if self.events is not None:
                    kind = EventKind.REQUEUED if not job.status.terminal else EventKind.FAILED
                    await self.events.emit(JobEvent(kind, job, message=job.error or ""))
            if self._wake is not None:
                self._wake()
        return handled

    async def expire_uploads(self, *, now: float | None = None) -> list[Path]:
        """Delete uploads unused for the retention period and stale staged files, keeping every input of a queued
        or running job; returns what was deleted. Safe to run any number of times."""
        try:
            keep = await self.scheduler.active_inputs()
            removed = await asyncio.to_thread(
                expire_uploads,
                self.uploads_dir,
                keep=keep,
                older_than_s=self.upload_retention_s,
                now=time.time() if now is None else now,
            )
        except Exception:
            log.exception("the upload expiry failed; it is retried on the next run")
            return []
        if removed:
            names = ", ".join(path.name for path in removed[:LOGGED_NAMES])
            more = f" and {len(removed) - LOGGED_NAMES} more" if len(removed) > LOGGED_NAMES else ""
            log.info("deleted %d expired upload(s) from %s: %s%s", len(removed), self.uploads_dir, names, more)
        return removed

    def start(self) -> AsyncIOScheduler:
        """Schedule the jobs (stable ids, replacing any earlier ones) and start APScheduler in this loop."""
        policy = self.scheduler.policy
        scheduler = AsyncIOScheduler(timezone="UTC")
        jobs = (
            (self.refill, policy.refill_check_s, REFILL_JOB_ID, "top up tier allowances"),
            (self.sweep_leases, policy.lease_sweep_s, LEASE_SWEEP_JOB_ID, "take back jobs whose lease expired"),
            (self.expire_uploads, UPLOAD_EXPIRY_EVERY_S, UPLOAD_EXPIRY_JOB_ID, "delete expired uploads"),
        )
        for function, every_s, job_id, name in jobs:
            scheduler.add_job(
                function,
                "interval",
                seconds=every_s,
                id=job_id,
                name=name,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        scheduler.start()
        self.apscheduler = scheduler
        return scheduler

    def stop(self) -> None:
        if self.apscheduler is not None and self.apscheduler.running:
            self.apscheduler.shutdown(wait=False)
        self.apscheduler = None
