"""Finishing rendered work off the render thread: encode and write each task's files, then report it.

The render loop hands each group's outcome to a :class:`ResultQueue` and goes on with the next group at once, so
the GPU renders batch N+1 while batch N's images are encoded (in parallel, on an encoder pool: Pillow releases the
GIL while it compresses), written and reported. Replies leave in the order the groups were rendered, one at a
time, so the bot hears about a job in the same order as before. Whether a job was cancelled is decided when its
render ends (a cancel that comes while its files are written finds the job done; the bot discards the late result),
so a later attempt of the same job id, already waiting in the engine, is never mistaken for this one. Engine
process only.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace

from engine.protocol import FailureReason, RenderTask, TaskDone, TaskFailed
from engine.render import Rendered
from engine.results import write_results

log = logging.getLogger(__name__)

ENCODERS_MAX = 8
"""Encoder threads at most (one per image of a 4-image job, its grid, and the next job's)."""
GROUPS_AHEAD = 2
"""Rendered groups that may wait for their files; the render loop waits beyond that (bounded memory)."""


@dataclass(frozen=True)
class RenderedTask:
    """A task whose images are rendered and whose files are still to be written."""

    task: RenderTask
    model_name: str
    rendered: Rendered
    seconds: float
    safety: tuple[str, ...] = ()
    """Per image, why the safety check flagged it or ``""`` (see :mod:`engine.safety`); empty when not checked."""
    distilled: bool = False
    """The model's guidance is distilled (FLUX.1): its files say so (see :mod:`engine.metadata`)."""


Outcome = RenderedTask | TaskFailed
"""What the render loop made of one task: its images, or the reason it failed."""
Reply = TaskDone | TaskFailed


def encoder_count(cpus: int | None) -> int:
    """Threads of the encoder pool on a machine with ``cpus`` cores: one per core, at most :data:`ENCODERS_MAX`. On a
    GPU the render thread mostly waits for the device; on a CPU the encoders share its cores."""
    return max(1, min(ENCODERS_MAX, cpus or 1))


def finish(outcome: Outcome, encoders: Executor | None = None) -> Reply:
    """The reply for one task: a failure as it is, else its files written (see
    :func:`~engine.results.write_results`). A file that cannot be written fails the task with the reason (it is
    refunded like any failure) instead of stopping the engine."""
    if isinstance(outcome, TaskFailed):
        return outcome
    job_id = outcome.task.job_id
    try:
        done = write_results(
            outcome.model_name,
            outcome.task,
            outcome.rendered,
            outcome.seconds,
            encoders=encoders,
            distilled=outcome.distilled,
        )
    except OSError as error:
        log.error("could not write the files of job %s: %s", job_id, error)
        return TaskFailed(job_id, FailureReason.INTERNAL, f"the images could not be saved on the bot's host: {error}")
    return replace(done, safety=outcome.safety) if outcome.safety else done


class ResultQueue:
    """Finishes rendered groups on a thread of its own, in order, and hands each reply to ``deliver``."""

    def __init__(self, deliver: Callable[[Reply], None]) -> None:
        self._deliver = deliver
        self._encoders = ThreadPoolExecutor(encoder_count(os.cpu_count()), thread_name_prefix="engine-encoder")
        self._groups: queue.Queue[Sequence[Outcome] | None] = queue.Queue(GROUPS_AHEAD)
        self._thread = threading.Thread(target=self._run, name="engine-results", daemon=True)
        self._thread.start()

    def put(self, outcomes: Sequence[Outcome]) -> None:
        """Finish these outcomes after those put before; waits while :data:`GROUPS_AHEAD` groups are waiting."""
        self._groups.put(outcomes)

    def close(self) -> None:
        """Finish everything put so far, then stop."""
        self._groups.put(None)
        self._thread.join()
        self._encoders.shutdown()

    def _run(self) -> None:
        while (outcomes := self._groups.get()) is not None:
            for outcome in outcomes:
                try:
                    reply = finish(outcome, self._encoders)
                except Exception as error:  # a bug here must fail the job, not silence the engine
                    log.exception("finishing a job failed")
                    job_id = outcome.job_id if isinstance(outcome, TaskFailed) else outcome.task.job_id
                    reply = TaskFailed(job_id, FailureReason.INTERNAL, f"{type(error).__name__}: {error}")
                try:
                    self._deliver(reply)
                except (OSError, ValueError):  # the bot is gone: nobody hears the rest
                    log.debug("could not report job %s: the bot is gone", reply.job_id)
