"""ControlNet jobs on diffusers: the control image becomes its mode's map (:mod:`engine.control_maps`), and the
model's ControlNet pipeline renders with it, ``controlnet_conditioning_scale`` = the job's ``--cw``.

The ControlNet pipelines (``StableDiffusionControlNetPipeline``, ``StableDiffusionXLControlNetPipeline`` and their
img2img siblings) are made from the loaded model with ``AutoPipelineFor…from_pipe(pipeline, controlnet=…)``: they
share every component of the model (only the ControlNet's weights are added) and keep its dtype (a pipeline class's
own ``from_pipe`` without a dtype would cast the shared weights to fp32). A job with an ``init_image`` (a V button
of a ControlNet grid, or img2img with a control image) runs the img2img ControlNet pipeline at ``strength``.
Progress, previews and cancel are :func:`engine.render.denoise`'s, as for every job. Engine process only.
"""

from __future__ import annotations

import logging

from PIL import Image, ImageOps

from engine.control_maps import control_map
from engine.control_sources import CONTROL_WEIGHT_MAX, CONTROL_WEIGHT_MIN
from engine.controlnet_models import ControlModels, ControlNetLoadError
from engine.pipelines import LoadedModel
from engine.protocol import ControlNetEntry, RenderTask
from engine.render import Hooks, ImageInfo, Rendered, check_size, check_strength, denoise, load_image

log = logging.getLogger(__name__)


def check_family(entry: ControlNetEntry, model: LoadedModel) -> None:
    """A ControlNet runs only on the model family it was trained for. Raises ControlNetLoadError saying so."""
    if entry.family != model.family:
        raise ControlNetLoadError(
            f"ControlNet {entry.name!r} is for {entry.family} models but model {model.name!r} is {model.family}; "
            f"use a ControlNet of family {model.family} or a {entry.family} model"
        )


def check_control_weight(weight: float) -> None:
    if not CONTROL_WEIGHT_MIN <= weight <= CONTROL_WEIGHT_MAX:
        raise ValueError(f"control_weight={weight:g} must be from {CONTROL_WEIGHT_MIN:g} to {CONTROL_WEIGHT_MAX:g}")


def render_control(controls: ControlModels, model: LoadedModel, task: RenderTask, hooks: Hooks) -> Rendered:
    """Render a ControlNet task: its control map at the task's size, then one ControlNet pipeline call (img2img when
    the task has an ``init_image``). Raises ValueError for bad input, RenderCancelledError when cancelled."""
    entry = controls.entry(task.controlnet)
    check_family(entry, model)
    check_control_weight(task.control_weight)
    check_size(task)
    size = (task.width, task.height)
    source = load_image(task.control_image, "control_image")
    depth = controls.depth(model.device, model.dtype) if task.control_mode == "depth" else None
    conditioning = control_map(source, task.control_mode, size, depth)
    controlnet = controls.controlnet(entry.name, model.device, model.dtype)
    maps = [conditioning] * len(task.seeds)
    scale = {"controlnet_conditioning_scale": task.control_weight}
    strength: float | None = None
    if task.init_image:
        check_strength(task.strength)
        strength = task.strength
        init = ImageOps.fit(load_image(task.init_image, "init_image"), size, Image.Resampling.LANCZOS)
        extra = {"control_image": maps, **scale}
        images = denoise(
            model, "img2img", [task], hooks, image=init, strength=strength, controlnet=controlnet, extra=extra
        )
    else:
        extra = {"image": maps, **scale}
        images = denoise(
            model, "txt2img", [task], hooks, width=task.width, height=task.height, controlnet=controlnet, extra=extra
        )
    infos = [ImageInfo(seed, task.prompt, task.steps, task.cfg, task.sampler, strength) for seed in task.seeds]
    return Rendered(images, infos)
