"""Loading a model and running txt2img on it. Runs only inside the engine process."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers
from PIL import Image

from engine.device import pick_device, pick_dtype
from engine.protocol import EngineConfig, RenderTask
from engine.samplers import make_scheduler
from engine.tiny import ensure_tiny_model

log = logging.getLogger(__name__)

TINY_PREFIX = "tiny:"


class ModelLoadError(Exception):
    """The model could not be loaded; the message says what to fix."""


class RenderCancelledError(Exception):
    """The job was cancelled between two denoising steps."""


@dataclass
class LoadedModel:
    """A text-to-image pipeline on its device, with the scheduler config samplers are built from."""

    name: str
    pipeline: Any
    device: str
    dtype: torch.dtype
    scheduler_config: Any
    load_seconds: float


def resolve_source(config: EngineConfig) -> str:
    """A path or hub id ``from_pretrained`` understands; tiny models are built on first use."""
    source = config.model_source
    if source.startswith(TINY_PREFIX):
        family = source.removeprefix(TINY_PREFIX)
        return str(ensure_tiny_model(family, Path(config.data_dir) / "models"))
    path = Path(source).expanduser()
    if path.is_absolute() or source.startswith((".", "~")) or path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"model {config.model_name!r}: {source} is not a folder. Point source at a diffusers folder "
                "(one with model_index.json) or use a Hugging Face hub id."
            )
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"model {config.model_name!r}: {path} has no model_index.json, so it is not a diffusers folder."
            )
        return str(path)
    return source


def load_model(config: EngineConfig) -> LoadedModel:
    """Load the configured model onto the chosen device. Raises ModelLoadError with a readable reason."""
    started = time.perf_counter()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    try:
        device = pick_device(config.device)
        dtype = pick_dtype(config.dtype, device)
    except ValueError as error:
        raise ModelLoadError(str(error)) from error
    source = resolve_source(config)
    try:
        pipeline = diffusers.AutoPipelineForText2Image.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelLoadError(
            f"model {config.model_name!r} from {source} did not load: {_first_line(error)}. "
            "Check that the folder is complete (re-download it) or that the hub id is right and this machine "
            "is online or has the model in its Hugging Face cache."
        ) from error
    pipeline = pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return LoadedModel(
        name=config.model_name,
        pipeline=pipeline,
        device=device,
        dtype=dtype,
        scheduler_config=pipeline.scheduler.config,
        load_seconds=time.perf_counter() - started,
    )


def render_txt2img(
    model: LoadedModel,
    task: RenderTask,
    on_step: Callable[[int, int], None],
    is_cancelled: Callable[[], bool],
) -> list[Image.Image]:
    """Render ``len(task.seeds)`` images; image ``i`` depends only on ``task.seeds[i]`` (a CPU generator)."""
    pipeline = model.pipeline
    pipeline.scheduler = make_scheduler(task.sampler, model.scheduler_config)
    count = len(task.seeds)
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in task.seeds]

    def step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        on_step(step + 1, task.steps)
        if is_cancelled():
            pipe._interrupt = True
        return tensors

    output = pipeline(
        prompt=[task.prompt] * count,
        negative_prompt=[task.negative_prompt] * count if task.negative_prompt else None,
        width=task.width,
        height=task.height,
        num_inference_steps=task.steps,
        guidance_scale=task.cfg,
        generator=generators,
        callback_on_step_end=step_end,
        output_type="pil",
    )
    if is_cancelled():
        raise RenderCancelledError(f"job {task.job_id} was cancelled")
    return list(output.images)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
