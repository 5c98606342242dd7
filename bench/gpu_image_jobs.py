"""What ``bench.gpu``'s cases with an uploaded image (``controlnet``, ``ip_adapter``) share: the timed full-path job,
the timed bare pipeline call, and the warm bare runs with their peak memory."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from bench.bare import synchronize


async def timed_job(service: Any, prepared: Any, received: Any) -> tuple[float, Any]:
    """Submit the prepared request as the console (its upload attached) and run the worker until idle; the seconds
    from submitting until the job is recorded done, and the job as recorded."""
    from bot.actors import Actor

    started = time.perf_counter()
    [submitted] = (await service.service.submit(Actor.console(), prepared, uploads=[received.staged])).jobs
    await service.service.worker.run_until_idle()
    elapsed = time.perf_counter() - started
    return elapsed, await service.service.scheduler.get(submitted.job.id)


def timed_call(pipe: Any, params: Any, **inputs: Any) -> float:
    """Seconds of one pipeline call making the job's images at its size, steps, guidance and seeds, with the case's
    own ``inputs`` (prompt, image, scale)."""
    import torch

    synchronize()
    started = time.perf_counter()
    pipe(
        **inputs,
        width=params.width,
        height=params.height,
        num_inference_steps=params.steps,
        guidance_scale=params.cfg,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in params.seeds],
        output_type="pil",
    )
    synchronize()
    return time.perf_counter() - started


def warm_runs(call: Callable[[], float], runs: int) -> tuple[list[float], float]:
    """``runs`` timed calls after one warm-up call, and the peak GPU memory (GiB) they reached."""
    from bench.gpu import peak_gib, reset_peak

    reset_peak()
    call()
    timings = [call() for _ in range(runs)]
    return timings, peak_gib()


def decoded(picture: bytes) -> Any:
    """The uploaded picture as an RGB image."""
    from PIL import Image

    with Image.open(io.BytesIO(picture)) as opened:
        return opened.convert("RGB")
