"""A render whose waiter gave up (a bot shutting down) is stopped; its late reply never settles a later attempt of the
same job on the same engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.running.engine_supervisor import EngineSupervisor
from engine.protocol import Progress, TaskDone
from tests.engine.rendering import render_one, tiny_task

JOB_ID = 990_001
"""Far from the ids other tests use on the session's engine."""


async def test_the_next_attempt_gets_its_own_result_not_the_abandoned_ones(
    engine: EngineSupervisor, data_dir: Path
) -> None:
    """Attempt 1 is abandoned mid-render (its waiter cancelled); attempt 2, sent at once, completes."""
    await engine.wait_ready()
    started = asyncio.Event()

    def on_progress(progress: Progress) -> None:
        if progress.step >= 1:
            started.set()

    first = asyncio.create_task(render_one(engine, tiny_task(data_dir, JOB_ID, steps=60, seeds=(5,)), on_progress))
    await asyncio.wait_for(started.wait(), timeout=60)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)

    done = await asyncio.wait_for(render_one(engine, tiny_task(data_dir, JOB_ID, seeds=(5,))), timeout=60)
    assert isinstance(done, TaskDone)
    assert len(done.paths) == 1
