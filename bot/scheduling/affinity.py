"""Which engine should take which job when several render: model affinity, the pick it shapes, and the ETA.

Pure rules; :class:`~bot.scheduling.scheduler.Scheduler` applies them while picking, the engine pool builds the
:class:`Affinity` of the engine that asks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.scheduling.queue_index import Queued, QueueIndex


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


def pick_next(index: QueueIndex, now: float, max_batch: int, affinity: Affinity | None) -> list[Queued]:
    """The next job of ``index`` (and up to ``max_batch - 1`` compatible ones of other members) in the scheduler's
    order. With ``affinity``: nothing when the next job does not :meth:`Affinity.suits` the asking engine, because
    another free engine holds its model; that engine takes it, and the pool wakes the asking one for the job after
    it. So the order stays the scheduler's, and a single pick stays O(log n)."""
    if max_batch <= 1:
        best = index.best(now)
        if best is None or (affinity is not None and not affinity.suits(best.model)):
            return []
        return [best]
    candidates = index.scan(now)
    if not candidates:
        return []
    first = candidates[0][1]
    if affinity is not None and not affinity.suits(first.model):
        return []
    chosen = [first]
    taken = {first.user_id}
    for _, entry in candidates[1:]:
        if len(chosen) >= max_batch:
            break
        if entry.user_id not in taken and entry.key == first.key:
            chosen.append(entry)
            taken.add(entry.user_id)
    return chosen
