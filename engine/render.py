"""The task kinds on diffusers: txt2img, img2img, inpaint, variation, upscale, zoom, pan and sweep.

Every kind ends in :func:`denoise`, one pipeline call for one task or for a batch of compatible txt2img tasks.
Image ``i`` of a task is drawn from its own CPU generator seeded with ``seeds[i]``, so any one image can be
redone on its own. Engine process only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image, ImageOps

from engine.canvas import fit_mask, pan_canvas, upscaled_size, zoom_out_canvas
from engine.conditioning import compel_embeddings, loras_applied, needs_compel
from engine.families import check_family_task
from engine.flow_families import call_arguments, is_flow, make_flow_scheduler, pixel_factor, spatial_latents
from engine.flow_prompts import check_t5_length, prompt_texts
from engine.ip_adapter import image_prompt_arguments, image_prompting
from engine.pipelines import LoadedModel, ModelCache, RenderCancelledError
from engine.preview import LATENT_RGB, encode_preview, preview_pixels
from engine.prompt_syntax import parse_loras
from engine.prompt_weights import FULL_STOP, chaos_cfg, image_conditionings, stopped_steps
from engine.protocol import BatchKey, LoraEntry, RenderTask, TaskKind, batch_key
from engine.render_inputs import canvas_multiple as canvas_multiple
from engine.render_inputs import check_size as check_size
from engine.render_inputs import check_strength as check_strength
from engine.render_inputs import load_image as load_image
from engine.render_inputs import seamless as seamless
from engine.samplers import make_scheduler
from engine.sweep import expand_sweep, labelled_grid
from engine.weighted_conditioning import blended_embeddings, image_guidance

log = logging.getLogger(__name__)

KINDS = tuple(TaskKind)
TILE_VAE_ABOVE_PIXELS = 1024 * 1024
COMPEL_FAMILIES = ("sd15", "sd2", "sdxl")
"""Families whose prompts go through compel when they use weights or run past 77 tokens."""

StepHook = Callable[[int, int, int, bytes | None], None]
"""(job_id, step, total, preview JPEG or None)."""
PreviewHook = Callable[[int, int, int, torch.Tensor], None]
"""(job_id, step, total, preview pixels on the render's device): encodes the preview elsewhere and reports the step
with it (see :class:`~engine.preview.PreviewEncoder`)."""


@dataclass(frozen=True)
class Hooks:
    """How a render talks back: per-step progress (with an occasional preview) and cancellation.

    A step with a preview is reported by ``on_preview`` when set (the preview is encoded off the render thread), else
    by ``on_step`` with the preview encoded at once."""

    on_step: StepHook
    is_cancelled: Callable[[int], bool]
    preview_every: int = 0
    on_preview: PreviewHook | None = None


@dataclass(frozen=True)
class ImageInfo:
    """What produced one image, for its metadata."""

    seed: int
    prompt: str
    steps: int
    cfg: float
    sampler: str
    strength: float | None = None
    label: str = ""


@dataclass
class Rendered:
    """A task's images in seed order, with what produced each; sweeps add their labelled grid."""

    images: list[Image.Image]
    infos: list[ImageInfo]
    grid: Image.Image | None = None
    loras: tuple[tuple[str, float], ...] = field(default=())
    suggestions: tuple[str, ...] = ()
    """A describe task's prompts for its image (see :mod:`engine.describe`)."""


def group_tasks(tasks: Sequence[RenderTask], max_batch: int) -> list[list[RenderTask]]:
    """Split a batch into groups that share one pipeline call (equal :func:`batch_key`), at most ``max_batch``
    tasks each, order kept."""
    groups: list[list[RenderTask]] = []
    open_groups: dict[BatchKey, list[RenderTask]] = {}
    for task in tasks:
        key = batch_key(task)
        group = open_groups.get(key) if key is not None else None
        if group is not None and len(group) < max(1, max_batch):
            group.append(task)
            continue
        group = [task]
        groups.append(group)
        if key is not None:
            open_groups[key] = group
    return groups


def render_group(
    cache: ModelCache, tasks: Sequence[RenderTask], loras: Sequence[LoraEntry], hooks: Hooks
) -> list[Rendered]:
    """Render a group from :func:`group_tasks`: one call for several txt2img tasks, else the task's own kind."""
    if len(tasks) > 1:
        model = cache.get(tasks[0].model)
        check_size(tasks[0])
        images = denoise(model, "txt2img", tasks, hooks, width=tasks[0].width, height=tasks[0].height)
        results: list[Rendered] = []
        start = 0
        for task in tasks:
            count = len(task.seeds)
            results.append(Rendered(images[start : start + count], _infos(task)))
            start += count
        return results
    return [render_task(cache, tasks[0], loras, hooks)]


def render_task(cache: ModelCache, task: RenderTask, loras: Sequence[LoraEntry], hooks: Hooks) -> Rendered:
    """Render one task of any kind. Raises ValueError for bad input, RenderCancelledError when cancelled."""
    if task.kind not in KINDS:
        raise ValueError(f"kind={task.kind!r} is not one of: {', '.join(KINDS)}")
    if not task.seeds:
        raise ValueError("seeds is empty; give at least one seed")
    if task.kind == TaskKind.DESCRIBE:  # a captioning model, not a diffusion pipeline
        from engine.describe import describe_task

        return describe_task(task, cache.config, hooks.is_cancelled)
    model = cache.get(task.model)
    check_family_task(model.family, model.name, task)  # what the bot refuses before charging
    clean, requested = parse_loras(task.prompt)
    task = dataclasses.replace(task, prompt=clean)
    with loras_applied(model.pipeline, requested, loras, model.family), image_prompting(model, task, cache.config):
        if task.kind == TaskKind.CONTROL:  # control maps, ControlNets and their pipelines: engine.controlnet
            from engine.controlnet import render_control

            rendered = render_control(cache.controlnets, model, task, hooks)
        else:
            rendered = _render_kind(model, task, hooks)
    rendered.loras = requested
    return rendered


def _offset_steps(on_step: StepHook, before: int, total: int) -> StepHook:
    """Progress of one sweep cell as progress through the whole sweep."""

    def report(job_id: int, step: int, _cell_total: int, preview: bytes | None) -> None:
        on_step(job_id, before + step, total, preview)

    return report


def _offset_previews(on_preview: PreviewHook | None, before: int, total: int) -> PreviewHook | None:
    """Previews of one sweep cell at their step through the whole sweep."""
    if on_preview is None:
        return None

    def report(job_id: int, step: int, _cell_total: int, pixels: torch.Tensor) -> None:
        on_preview(job_id, before + step, total, pixels)

    return report


def _render_kind(model: LoadedModel, task: RenderTask, hooks: Hooks) -> Rendered:
    kind = task.kind
    if kind == "sweep":
        return _render_sweep(model, task, hooks)
    if kind == "txt2img":
        check_size(task)
        return Rendered(denoise(model, "txt2img", [task], hooks, width=task.width, height=task.height), _infos(task))
    init = load_image(task.init_image, "init_image")
    multiple = canvas_multiple(pixel_factor(model.family, model.pipeline))
    if kind == "img2img":
        check_size(task)
        init = ImageOps.fit(init, (task.width, task.height), Image.Resampling.LANCZOS)
        return _img2img(model, task, init, hooks)
    if kind == "variation":
        return _img2img(model, task, init, hooks)
    if kind == "upscale":
        size = upscaled_size(init.size, task.upscale_factor, multiple)
        base = init.resize(size, Image.Resampling.LANCZOS)
        tile = task.tile_vae or size[0] * size[1] > TILE_VAE_ABOVE_PIXELS
        return _img2img(model, task, base, hooks, tile_vae=tile)
    if kind == "inpaint":
        check_size(task)
        mask = fit_mask(load_image(task.mask_image, "mask_image", mode="L"), init.size)
        image = ImageOps.fit(init, (task.width, task.height), Image.Resampling.LANCZOS)
        mask = mask.resize(image.size, Image.Resampling.NEAREST)
        return _inpaint(model, task, image, mask, hooks, task.strength)
    if kind == "zoom":
        canvas, mask = zoom_out_canvas(init, task.zoom)
        return _inpaint(model, task, canvas, mask, hooks, 1.0)
    canvas, mask = pan_canvas(init, task.pan, multiple)
    return _inpaint(model, task, canvas, mask, hooks, 1.0)


def _img2img(
    model: LoadedModel, task: RenderTask, image: Image.Image, hooks: Hooks, *, tile_vae: bool = False
) -> Rendered:
    check_strength(task.strength)
    vae = model.pipeline.vae
    was_tiling = getattr(vae, "use_tiling", False)
    if tile_vae:
        vae.enable_tiling()
    try:
        images = denoise(model, "img2img", [task], hooks, image=image, strength=task.strength)
    finally:
        if tile_vae and not was_tiling:
            vae.disable_tiling()
    return Rendered(images, _infos(task, strength=task.strength))


def _inpaint(
    model: LoadedModel, task: RenderTask, image: Image.Image, mask: Image.Image, hooks: Hooks, strength: float
) -> Rendered:
    check_strength(strength)
    images = denoise(
        model,
        "inpaint",
        [task],
        hooks,
        image=image,
        mask=mask,
        strength=strength,
        width=image.width,
        height=image.height,
    )
    return Rendered(images, _infos(task, strength=strength))


def _render_sweep(model: LoadedModel, task: RenderTask, hooks: Hooks) -> Rendered:
    base_kind = "img2img" if task.init_image else "txt2img"
    cells = expand_sweep(task, base_kind)
    images: list[Image.Image] = []
    infos: list[ImageInfo] = []
    total = sum(cell.task.steps for cell in cells)
    done = 0
    for cell in cells:
        cell_hooks = Hooks(
            _offset_steps(hooks.on_step, done, total),
            hooks.is_cancelled,
            hooks.preview_every,
            _offset_previews(hooks.on_preview, done, total),
        )
        done += cell.task.steps
        rendered = _render_kind(model, cell.task, cell_hooks)
        images.extend(rendered.images)
        infos.extend(dataclasses.replace(info, label=cell.label) for info in rendered.infos)
    columns = len(task.sweep[0][1])
    return Rendered(images, infos, grid=labelled_grid(images, [info.label for info in infos], columns))


def denoise(
    model: LoadedModel,
    pipe_kind: str,
    tasks: Sequence[RenderTask],
    hooks: Hooks,
    *,
    image: Image.Image | None = None,
    mask: Image.Image | None = None,
    strength: float | None = None,
    width: int | None = None,
    height: int | None = None,
    controlnet: Any = None,
    extra: dict[str, Any] | None = None,
) -> list[Image.Image]:
    """One pipeline call for ``tasks`` (same settings, maybe different prompts); images in task then seed order.
    With ``controlnet``: that ControlNet's pipeline of ``pipe_kind``; ``extra``: more arguments of the call."""
    first = tasks[0]
    pipe = model.pipeline_for(pipe_kind, controlnet)
    pipe.scheduler = _scheduler(model, first.sampler)
    prompts = [task.prompt for task in tasks for _seed in task.seeds]
    negatives = [task.negative_prompt for task in tasks for _seed in task.seeds]
    generators = [torch.Generator("cpu").manual_seed(seed) for task in tasks for seed in task.seeds]
    owners: list[tuple[int, int]] = []
    offset = 0
    for task in tasks:
        owners.append((task.job_id, offset))
        offset += len(task.seeds)
    steps = first.steps
    if strength is not None and int(steps * strength) < 1:
        steps = math.ceil(1 / strength)
    kwargs: dict[str, Any] = {
        "num_inference_steps": steps,
        "guidance_scale": image_guidance(tasks),
        "generator": generators,
        "output_type": "pil",
    }
    any_negative = any(negatives)
    if is_flow(model.family):  # T5 reads a limited length: longer is refused, never cut short
        check_t5_length(model.family, pipe, model.name, prompt_texts(tasks))
    conditionings = image_conditionings(tasks)  # multi-prompts: blended embeddings per image
    if conditionings is not None:
        kwargs.update(blended_embeddings(pipe, model.family, conditionings))
    elif model.family in COMPEL_FAMILIES and needs_compel(pipe, prompts + (negatives if any_negative else [])):
        kwargs.update(compel_embeddings(pipe, model.family, prompts, negatives if any_negative else None))
    else:
        kwargs["prompt"] = prompts
        kwargs["negative_prompt"] = negatives if any_negative else None
    if width is not None and height is not None:
        kwargs["width"], kwargs["height"] = width, height
    if image is not None:
        kwargs["image"] = [image] * len(prompts)
        kwargs["strength"] = strength
    if mask is not None:
        kwargs["mask_image"] = [mask] * len(prompts)
    kwargs.update(extra or {})
    kwargs.update(image_prompt_arguments(model, len(prompts), first.cfg))
    kwargs.update(call_arguments(model.family, pipe, image, width, height))  # SD3, FLUX.1: sizes, T5 length
    job_ids = [job_id for job_id, _offset in owners]

    def step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        total = stopped_steps(getattr(pipe, "_num_timesteps", None) or steps, first.stop)
        want_preview = (
            hooks.preview_every > 0
            and (step + 1) % hooks.preview_every == 0
            and model.family in LATENT_RGB
            and "latents" in tensors
        )
        if want_preview:
            latents = spatial_latents(
                model.family, pipe, tensors["latents"], kwargs.get("width", 0), kwargs.get("height", 0)
            )
            firsts = latents[[start for _job_id, start in owners]]
            _report_previews(hooks, owners, step + 1, total, preview_pixels(firsts, model.family))
        else:
            for job_id, _start in owners:
                hooks.on_step(job_id, step + 1, total, None)
        if all(hooks.is_cancelled(job_id) for job_id in job_ids):
            pipe._interrupt = True
        if first.stop < FULL_STOP and step + 1 >= total:  # --stop: the rest is skipped, what is there decoded
            pipe._interrupt = True
        return tensors

    with seamless(pipe, enabled=first.tile):
        output = pipe(callback_on_step_end=step_end, **kwargs)
    if all(hooks.is_cancelled(job_id) for job_id in job_ids):
        raise RenderCancelledError(f"job(s) {job_ids} cancelled")
    return list(output.images)


def _report_previews(
    hooks: Hooks, owners: Sequence[tuple[int, int]], step: int, total: int, pixels: torch.Tensor
) -> None:
    """Each job's step with the preview of its first image (``pixels``: one preview per job, in ``owners`` order)."""
    for (job_id, _start), preview in zip(owners, pixels, strict=True):
        if hooks.on_preview is not None:
            hooks.on_preview(job_id, step, total, preview)
        else:
            hooks.on_step(job_id, step, total, encode_preview(preview.cpu()))


def _scheduler(model: LoadedModel, sampler: str) -> Any:
    """The sampler's scheduler, built once per model (set_timesteps resets its state for every call)."""
    cache: dict[str, Any] = model._derived.setdefault("schedulers", {})
    if sampler not in cache:
        make = make_flow_scheduler if is_flow(model.family) else make_scheduler
        cache[sampler] = make(sampler, model.scheduler_config)
    return cache[sampler]


def _infos(task: RenderTask, *, strength: float | None = None) -> list[ImageInfo]:
    return [
        ImageInfo(seed, task.prompt, task.steps, chaos_cfg(task.cfg, task.chaos, seed), task.sampler, strength)
        for seed in task.seeds
    ]
