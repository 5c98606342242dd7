"""``python -m bench.engine_overhead``: the full job path against a bare diffusers call doing the same work.

Full path: prepare and enqueue an /imagine (SQLite), the worker claims it, the engine process renders 4 images of
64×64 in 4 steps on the tiny model, writes the PNGs and their grid, the worker records them. Bare: one
``pipe(...)`` call in this process for the same 4 images (same model, prompt, seed, sampler, steps, size).
After warm-up, the two alternate; medians over ``RUNS`` each. Prints one JSON object as its last line.
"""

from __future__ import annotations

import asyncio
import json
import time

from bench.common import median_ms, quiet, tiny_settings

RUNS = 25
WARMUP = 3
PROMPT = "a red fox in the snow --seed 7"


def _bare_pipeline(model_dir: str):  # type: ignore[no-untyped-def]
    import diffusers

    pipe = diffusers.AutoPipelineForText2Image.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    return pipe


async def main() -> dict[str, object]:
    import torch

    from bot.actors import Actor
    from bot.application.service import ImagineService
    from bot.jobs import Status
    from engine.tiny import ensure_tiny_model

    settings = tiny_settings()
    model_dir = ensure_tiny_model("sd15", settings.models_dir)
    pipe = _bare_pipeline(str(model_dir))
    service = await ImagineService.open(settings)
    await service.engine.wait_ready()
    [prepared] = await service.prepare(Actor.console(), PROMPT)
    params = prepared.params

    async def full() -> float:
        started = time.perf_counter()
        [submitted] = (await service.submit(Actor.console(), [prepared])).jobs
        await service.worker.run_until_idle()
        elapsed = time.perf_counter() - started
        job = await service.scheduler.get(submitted.job.id)
        assert job.status is Status.COMPLETED, job.error
        return elapsed

    def bare() -> float:
        started = time.perf_counter()
        pipe(
            prompt=[params.prompt] * params.images,
            width=params.width,
            height=params.height,
            num_inference_steps=params.steps,
            guidance_scale=params.cfg,
            generator=[torch.Generator("cpu").manual_seed(seed) for seed in params.seeds],
            output_type="pil",
        )
        return time.perf_counter() - started

    try:
        for _ in range(WARMUP):
            await full()
            bare()
        full_times: list[float] = []
        bare_times: list[float] = []
        for _ in range(RUNS):
            full_times.append(await full())
            bare_times.append(bare())
    finally:
        await service.close()
    full_ms, bare_ms = median_ms(full_times), median_ms(bare_times)
    return {
        "benchmark": "engine_overhead",
        "runs": RUNS,
        "images": params.images,
        "size": f"{params.width}x{params.height}",
        "steps": params.steps,
        "full_median_ms": full_ms,
        "bare_median_ms": bare_ms,
        "overhead_ratio": round(full_ms / bare_ms, 3),
        "target": "<= 1.10",
    }


if __name__ == "__main__":
    quiet()
    print(json.dumps(asyncio.run(main())))
