"""Which engine should take which job when several render: model affinity, and the ETA with several engines.

Pure rules; :class:`~bot.scheduling.scheduler.Scheduler` applies them while picking, the engine pool builds the
:class:`Affinity` of the engine that asks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Affinity:
    """What the engine asking for work holds, and what other free engines hold.

    A job suits the asking engine when its model is loaded there, or when no other free engine has it loaded
    (then someone has to load it anyway, and a free engine should not wait). The next job, when its model sits
    loaded on another free engine, is left to that engine, which is woken to take it; the asking engine then
    takes the job after it.
    """

    loaded: frozenset[str] = frozenset()
    elsewhere: frozenset[str] = frozenset()

    def suits(self, model: str) -> bool:
        return model in self.loaded or model not in self.elsewhere


def eta_seconds(position: int, engines: int, mean_job_s: float) -> float:
    """Seconds until the job at queue ``position`` (1 = next) is likely done when ``engines`` render in parallel,
    each job taking ``mean_job_s``: the jobs ahead of it start in rounds of ``engines``."""
    return math.ceil(position / max(1, engines)) * mean_job_s
