"""Render one task on a supervised engine, as the tests of the engine's supervision need it."""

from __future__ import annotations

from bot.errors import RenderFailedError
from bot.running.engine_supervisor import EngineSupervisor, ProgressCallback
from engine.protocol import RenderTask, TaskDone, TaskFailed


async def render_one(
    engine: EngineSupervisor, task: RenderTask, on_progress: ProgressCallback | None = None
) -> TaskDone:
    """Render one task. Raises EngineCrashedError if the engine dies, RenderFailedError if the job fails."""
    (result,) = await engine.render_batch([task], on_progress)
    if isinstance(result, TaskFailed):
        raise RenderFailedError(result.message, reason=result.reason)
    return result
