"""What admission gives back: each admitted job with its place in the queue, and what the request cost.

Admission (:func:`bot.scheduling.admission.admit_jobs`) writes the jobs and their debit; the service adds each
job's place and ETA once the scheduler holds them, and returns the same object to the surface.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.jobs import Job, Lane


@dataclass(frozen=True)
class Submitted:
    """One admitted job and where it stands in the queue."""

    job: Job
    balance: int
    """The member's balance after the whole request was charged."""
    position: int = 0
    """1 for the next job to run (an estimate under fair sharing); 0 when not known yet."""
    eta_s: float | None = None
    """Seconds until the job is likely done; None without recent job durations."""

    @property
    def cost(self) -> int:
        """Credits charged for this job."""
        return self.job.cost


@dataclass(frozen=True)
class Admitted:
    """The jobs of one request, queued and charged together."""

    jobs: tuple[Submitted, ...]
    lane: Lane
    cost: int
    """Credits charged for all of them."""
    balance: int
    """The member's balance after the charge."""
    tier: str
