"""``python -m bench.throughput``: 16 jobs queued at once through the full job path against 16 bare calls.

Full path: 16 /imagine jobs are prepared and queued in one go, then the worker serves them (claims in SQLite,
hands each batch to the engine process while the previous one renders, the engine writes the files while it
renders the next, the worker records them). Bare: the same 16 calls, one after another, in this process. After a
warm-up of each, the two alternate :data:`REPEATS` times; ``throughput_ratio`` = median bare seconds / median full
seconds (1.0: the job path costs the queue nothing).

Cases: ``tiny`` (the tiny model, 64×64, 4 steps: the target, ≥ 0.97 on a 2-core CPU) and ``gpu_regime`` (512²
images from a model whose denoising costs almost nothing: the files are the work, as on a fast GPU). Prints one
JSON object as its last line.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from bench.bare import bare_call, bare_pipeline
from bench.common import full_size_settings, quiet, running_service, tiny_settings

JOBS = 16
REPEATS = 3
PROMPT = "a red fox in the snow --seed {seed}"
TARGET = 0.97


async def measure(settings: Any, jobs: int) -> dict[str, Any]:
    from bot.actors import Actor
    from bot.jobs import Status

    console = Actor.console()
    model_dir = str(settings.registry[settings.model].source)
    if model_dir.startswith("tiny:"):
        from engine.tiny import ensure_tiny_model

        model_dir = str(ensure_tiny_model(model_dir.removeprefix("tiny:"), settings.models_dir))
    async with running_service(settings) as service:

        async def queue(count: int, first_seed: int) -> float:
            prompts = [PROMPT.format(seed=first_seed + index) for index in range(count)]
            prepared = [(await service.prepare(console, prompt))[0] for prompt in prompts]
            started = time.perf_counter()
            submitted = (await service.submit(console, prepared)).jobs
            await service.worker.run_until_idle()
            elapsed = time.perf_counter() - started
            for job in submitted:
                done = await service.scheduler.get(job.job.id)
                assert done.status is Status.COMPLETED, done.error
            return elapsed

        [prepared] = await service.prepare(console, PROMPT.format(seed=1))
        pipe = bare_pipeline(model_dir, prepared.params.sampler)
        await queue(2, 1000)  # warm-up
        bare_call(pipe, prepared.params)
        full_runs: list[float] = []
        bare_runs: list[float] = []
        for repeat in range(REPEATS):  # alternating, so a slow spell of the machine weighs on both
            full_runs.append(await queue(jobs, 1 + repeat * jobs))
            bare_runs.append(sum(bare_call(pipe, prepared.params) for _ in range(jobs)))
    full_s, bare_s = statistics.median(full_runs), statistics.median(bare_runs)
    params = prepared.params
    return {
        "jobs": jobs,
        "images_per_job": params.images,
        "size": f"{params.width}x{params.height}",
        "steps": params.steps,
        "full_s": round(full_s, 3),
        "bare_s": round(bare_s, 3),
        "throughput_ratio": round(bare_s / full_s, 3),
    }


async def main(jobs: int = JOBS) -> dict[str, object]:
    tiny = await measure(tiny_settings(), jobs)
    regime = await measure(full_size_settings(), jobs)
    return {
        "benchmark": "throughput",
        "tiny": {**tiny, "target": f">= {TARGET}"},
        "gpu_regime": regime,
        "throughput_ratio": tiny["throughput_ratio"],
    }


if __name__ == "__main__":
    quiet()
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else JOBS))))
