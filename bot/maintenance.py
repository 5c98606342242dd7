"""Background upkeep on APScheduler 3.x: allowance top-ups and the lease-expiry sweep.

The scheduler must be started inside the running event loop (the bot's ``setup_hook``). Jobs have stable ids and
``replace_existing=True``, and each one is idempotent (a refill compares stored last-refill times with the current
period; a sweep looks at stored lease times), so a restart, a missed run or a repeated run never grants twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.events import EventBus, EventKind, JobEvent
from bot.ledger import Ledger
from bot.scheduler import Scheduler

log = logging.getLogger(__name__)

REFILL_JOB_ID = "imaginebot:refill-allowances"
LEASE_SWEEP_JOB_ID = "imaginebot:expire-leases"


class Maintenance:
    """The periodic jobs; :meth:`start` inside the running loop, :meth:`stop` on shutdown."""

    def __init__(
        self,
        ledger: Ledger,
        scheduler: Scheduler,
        *,
        events: EventBus | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.scheduler = scheduler
        self.events = events
        self._wake = wake
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

    def start(self) -> AsyncIOScheduler:
        """Schedule the jobs (stable ids, replacing any earlier ones) and start APScheduler in this loop."""
        policy = self.scheduler.policy
        scheduler = AsyncIOScheduler(timezone="UTC")
        jobs = (
            (self.refill, policy.refill_check_s, REFILL_JOB_ID, "top up tier allowances"),
            (self.sweep_leases, policy.lease_sweep_s, LEASE_SWEEP_JOB_ID, "take back jobs whose lease expired"),
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
