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

ROUNDS = 7
JOBS = 8
GROUP = 4


async def _time_engine(max_batch: int) -> list[float]:
    from bot.engine_supervisor import EngineSupervisor
    from bot.service import engine_config
    from engine.protocol import RenderTask

    settings = tiny_settings(engine_max_batch=max_batch)
    engine = EngineSupervisor(engine_config(settings), start_timeout_s=300)
    await engine.wait_ready()
    images = Path(settings.images_dir)
    job_id = 0
    samples: list[float] = []
    try:
        for round_index in range(ROUNDS + 1):
            tasks = []
            for member in range(JOBS):
                job_id += 1
                tasks.append(
                    RenderTask(
                        job_id=job_id,
                        prompt=f"member {member}: a red fox",
                        negative_prompt="",
                        width=64,
                        height=64,
                        steps=4,
                        cfg=5.0,
                        seeds=(member,),
                        sampler="euler_a",
                        output_dir=str(images / str(job_id)),
                    )
                )
            started = time.perf_counter()
            for start in range(0, JOBS, GROUP):
                results = await engine.render_batch(tasks[start : start + GROUP])
                assert all(type(result).__name__ == "TaskDone" for result in results), results
            if round_index:  # the first round warms up
                samples.append(time.perf_counter() - started)
    finally:
        engine.stop()
    return samples


async def main() -> dict[str, object]:
    single = await _time_engine(1)
    batched = await _time_engine(GROUP)
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
