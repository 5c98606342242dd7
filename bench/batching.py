"""``python -m bench.batching``: 8 compatible single-image jobs from 8 members, max_batch 4 against 1.

Both engines get the same 8 tasks through the supervisor's batch API (two batches of 4); with ``max_batch`` 4
the engine renders each batch in one pipeline call, with 1 it renders the tasks one by one. Medians over
``ROUNDS`` rounds. Prints one JSON object as its last line.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bench.common import median_ms, quiet, tiny_settings

ROUNDS = 9
JOBS = 8
GROUP = 4


async def _start(max_batch: int) -> tuple[object, Path]:
    from bot.running.engine_config import engine_config
    from bot.running.engine_supervisor import EngineSupervisor

    settings = tiny_settings(engine_max_batch=max_batch)
    engine = EngineSupervisor(engine_config(settings), start_timeout_s=300)
    await engine.wait_ready()
    return engine, Path(settings.images_dir)


async def _one_round(engine: object, images: Path, first_job_id: int) -> float:
    """Render the 8 members' jobs as two batches of 4; seconds taken."""
    from bot.running.engine_supervisor import EngineSupervisor
    from engine.protocol import RenderTask

    assert isinstance(engine, EngineSupervisor)
    tasks = [
        RenderTask(
            job_id=first_job_id + member,
            prompt=f"member {member}: a red fox",
            negative_prompt="",
            width=64,
            height=64,
            steps=4,
            cfg=5.0,
            seeds=(member,),
            sampler="euler_a",
            output_dir=str(images / str(first_job_id + member)),
        )
        for member in range(JOBS)
    ]
    started = time.perf_counter()
    for start in range(0, JOBS, GROUP):
        results = await engine.render_batch(tasks[start : start + GROUP])
        assert all(type(result).__name__ == "TaskDone" for result in results), results
    return time.perf_counter() - started


async def main() -> dict[str, object]:
    """Both engines stay up; rounds alternate between them so a busy machine slows both alike."""
    single_engine, single_images = await _start(1)
    batched_engine, batched_images = await _start(GROUP)
    single: list[float] = []
    batched: list[float] = []
    try:
        for round_index in range(ROUNDS + 1):
            job_id = 1000 * (round_index + 1)
            one = await _one_round(single_engine, single_images, job_id)
            four = await _one_round(batched_engine, batched_images, job_id)
            if round_index:  # the first round warms up
                single.append(one)
                batched.append(four)
    finally:
        for engine in (single_engine, batched_engine):
            engine.stop()  # type: ignore[attr-defined]
    single_ms, batched_ms = median_ms(single), median_ms(batched)
    return {
        "benchmark": "batching",
        "jobs": JOBS,
        "rounds": ROUNDS,
        "size": "64x64",
        "steps": 4,
        "max_batch_1_ms": single_ms,
        "max_batch_4_ms": batched_ms,
        "throughput_ratio": round(single_ms / batched_ms, 3),
        "target": ">= 1.3",
    }


if __name__ == "__main__":
    quiet()
    print(json.dumps(asyncio.run(main())))
