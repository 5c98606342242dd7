"""A tiny task and rendering it on a supervised engine, as the tests of the engine's supervision need them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.running.engine_supervisor import EngineSupervisor, ProgressCallback
from engine.protocol import RenderTask, TaskDone, TaskFailed


class RenderFailedError(Exception):
    """The engine ran the task and reported that it failed (for example out of memory)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


async def render_one(
    engine: EngineSupervisor, task: RenderTask, on_progress: ProgressCallback | None = None
) -> TaskDone:
    """Render one task. Raises EngineCrashedError if the engine dies, RenderFailedError if the job fails."""
    (result,) = await engine.render_batch([task], on_progress)
    if isinstance(result, TaskFailed):
        raise RenderFailedError(result.message, reason=result.reason)
    return result


def tiny_task(data_dir: Path, job_id: int, *, steps: int = 4, seeds: tuple[int, ...] = (1, 2)) -> RenderTask:
    """A small txt2img task (64×48, a negative prompt) writing under ``data_dir/images/<job id>``."""
    return RenderTask(
        job_id=job_id,
        prompt="a red fox",
        negative_prompt="blur",
        width=64,
        height=48,
        steps=steps,
        cfg=5.0,
        seeds=seeds,
        sampler="euler_a",
        output_dir=str(data_dir / "images" / str(job_id)),
    )


def run_group_here(*render_args: Any) -> list[TaskDone | TaskFailed]:
    """Render a group with the engine loop's own step (``engine.process._render``'s arguments) in this process,
    and write its files at once, as the loop's result queue would."""
    from engine import process
    from engine.finishing import finish

    return [finish(outcome) for outcome in process._render(*render_args)]
