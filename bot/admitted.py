"""What a surface gets back when jobs are admitted: each job with its place in the queue, and the charge."""

from __future__ import annotations

from dataclasses import dataclass

from bot.jobs import Job


@dataclass(frozen=True)
class Submitted:
    job: Job
    position: int
    cost: int = 0
    """Credits charged for the job."""
    balance: int = 0
    """The member's balance after the charge."""
    eta_s: float | None = None


@dataclass(frozen=True)
class Admitted:
    """The jobs of one request, charged together."""

    jobs: tuple[Submitted, ...]
    cost: int
    balance: int
