"""The bare diffusers call every benchmark compares the job path against: the model as a plain pipeline in the
benchmark's own process, called for one job's images exactly as the engine calls it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def bare_pipeline(model_dir: str | Path, sampler: str = "euler_a", dtype: str = "fp32") -> Any:
    """The model folder as a plain diffusers pipeline (``from_pretrained`` in ``dtype``, nothing else), on the GPU
    when there is one, with ``sampler``'s scheduler."""
    import diffusers
    import torch

    pipe = diffusers.AutoPipelineForText2Image.from_pretrained(
        str(model_dir), torch_dtype=getattr(torch, DTYPES[dtype])
    )
    pipe.set_progress_bar_config(disable=True)
    return with_sampler(pipe.to("cuda" if torch.cuda.is_available() else "cpu"), sampler)


def with_sampler(pipe: Any, sampler: str) -> Any:
    """``pipe`` with a fresh scheduler for ``sampler``, built from its own scheduler config."""
    from engine.samplers import make_scheduler

    pipe.scheduler = make_scheduler(sampler, pipe.scheduler.config)
    return pipe


def synchronize() -> None:
    """Wait for the GPU, when there is one (a timing must include the work it queued)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bare_call(pipe: Any, params: Any, on_step: Callable[..., Any] | None = None) -> float:
    """Seconds of one pipeline call making the job's images as PIL images, as the engine's call does (same prompt,
    size, steps, guidance and per-image seeds); ``on_step`` is its step callback."""
    import torch

    kwargs: dict[str, Any] = {
        "prompt": [params.prompt] * params.images,
        "width": params.width,
        "height": params.height,
        "num_inference_steps": params.steps,
        "guidance_scale": params.cfg,
        "generator": [torch.Generator("cpu").manual_seed(seed) for seed in params.seeds],
        "output_type": "pil",
    }
    if on_step is not None:
        kwargs["callback_on_step_end"] = on_step
    synchronize()
    started = time.perf_counter()
    pipe(**kwargs)
    synchronize()
    return time.perf_counter() - started


def bare_runs(pipe: Any, params: Any, runs: int, on_step: Callable[..., Any] | None = None) -> list[float]:
    """``runs`` timed calls after one warm-up call."""
    bare_call(pipe, params, on_step)
    return [bare_call(pipe, params, on_step) for _ in range(runs)]


def preview_hook(family: str, every: int = 5) -> tuple[Callable[..., Any], Any]:
    """A step callback making previews as the engine does (projection on the device, JPEG on a thread), and the
    encoder to close after."""
    from engine.preview import PreviewEncoder, preview_pixels

    encoder = PreviewEncoder(lambda *_args: None)

    def on_step(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if (step + 1) % every == 0:
            encoder.submit(1, step + 1, 0, preview_pixels(tensors["latents"][:1], family)[0])
        return tensors

    return on_step, encoder
