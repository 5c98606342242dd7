"""``python -m bench.engine_overhead``: the full job path against a bare diffusers call doing the same work.

Full path: prepare and enqueue an /imagine (SQLite), the worker claims it, the engine process renders 4 images,
writes the PNGs and their grid, the worker records them. Bare: one ``pipe(...)`` call in this process for the same
4 images (same model, prompt, seed, sampler, steps, size). After warm-up, the two alternate; medians over the runs.

Two cases:

- ``tiny``: the tiny model, 64×64 images in 4 steps (denoising dominates, as on a CPU).
- ``gpu_regime``: real output sizes (512² singles, a 1024² grid) from a model whose denoising costs almost nothing
  (:func:`bench.common.ensure_full_size_model`, 1 step), as on a fast GPU where what the job path does per image
  (encoding, writing, bookkeeping) is what adds up. ``overhead_ms_per_job`` = full − bare; the target, 35 ms, is 5%
  of an H200's bare 0.70 s for 4×512² at 20 steps.

And ``previews``: the bare call at 20 steps with a preview every 5 steps, made as the engine makes them, against
none (target: at most 2% slower). Prints one JSON object as its last line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.bare import bare_call, bare_pipeline, preview_hook
from bench.common import full_size_settings, median_ms, quiet, running_service, tiny_settings

RUNS = 25
WARMUP = 3
PROMPT = "a red fox in the snow --seed 7"
TARGET_OVERHEAD_MS = 35.0


async def measure(settings: Any, model_dir: Path, prompt: str, runs: int) -> dict[str, Any]:
    """Medians of the full path and of the bare call, alternating, after :data:`WARMUP` of each."""
    from bot.actors import Actor
    from bot.jobs import Status

    async with running_service(settings) as service:
        [prepared] = await service.prepare(Actor.console(), prompt)
        params = prepared.params
        pipe = bare_pipeline(model_dir, params.sampler)

        async def full() -> float:
            started = time.perf_counter()
            [submitted] = (await service.submit(Actor.console(), [prepared])).jobs
            await service.worker.run_until_idle()
            elapsed = time.perf_counter() - started
            job = await service.scheduler.get(submitted.job.id)
            assert job.status is Status.COMPLETED, job.error
            return elapsed

        for _ in range(WARMUP):
            await full()
            bare_call(pipe, params)
        full_times: list[float] = []
        bare_times: list[float] = []
        for _ in range(runs):
            full_times.append(await full())
            bare_times.append(bare_call(pipe, params))
    full_ms, bare_ms = median_ms(full_times), median_ms(bare_times)
    return {
        "images": params.images,
        "size": f"{params.width}x{params.height}",
        "steps": params.steps,
        "full_median_ms": full_ms,
        "bare_median_ms": bare_ms,
        "overhead_ms_per_job": round(full_ms - bare_ms, 2),
        "overhead_ratio": round(full_ms / bare_ms, 3),
    }


def preview_cost(model_dir: Path, runs: int) -> dict[str, Any]:
    """The bare call at 20 steps with a preview every 5 steps made as the engine makes them (projected where the
    latents are, encoded on a thread) against none, alternating; medians."""
    import dataclasses

    pipe = bare_pipeline(model_dir)
    params = dataclasses.make_dataclass("Params", ["prompt", "images", "width", "height", "steps", "cfg", "seeds"])(
        "a red fox in the snow", 4, 64, 64, 20, 7.0, (7, 8, 9, 10)
    )
    hook, encoder = preview_hook("sd15")
    bare_call(pipe, params)
    bare_call(pipe, params, hook)
    plain: list[float] = []
    previewed: list[float] = []
    for _ in range(runs):
        plain.append(bare_call(pipe, params))
        previewed.append(bare_call(pipe, params, hook))
    encoder.close()
    plain_ms, previewed_ms = median_ms(plain), median_ms(previewed)
    return {
        "steps": 20,
        "preview_every": 5,
        "plain_median_ms": plain_ms,
        "previews_median_ms": previewed_ms,
        "preview_cost": round(previewed_ms / plain_ms - 1, 4),
        "target": "<= 0.02",
    }


async def main(runs: int = RUNS) -> dict[str, object]:
    from engine.tiny import ensure_tiny_model

    tiny = tiny_settings()
    tiny_dir = ensure_tiny_model("sd15", tiny.models_dir)
    tiny_case = await measure(tiny, tiny_dir, PROMPT, runs)
    regime = full_size_settings()
    folder = Path(regime.models["x8"].source)
    regime_case = await measure(regime, folder, PROMPT, runs)
    return {
        "benchmark": "engine_overhead",
        "runs": runs,
        "tiny": {**tiny_case, "target": "overhead_ratio <= 1.10"},
        "gpu_regime": {**regime_case, "target": f"overhead_ms_per_job <= {TARGET_OVERHEAD_MS:g}"},
        "previews": preview_cost(tiny_dir, max(3, runs // 3)),
        "overhead_ms_per_job": regime_case["overhead_ms_per_job"],
        "overhead_ratio": tiny_case["overhead_ratio"],
    }


if __name__ == "__main__":
    quiet()
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else RUNS))))
