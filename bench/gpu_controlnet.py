"""``bench.gpu``'s ``controlnet`` case: a ControlNet job through the full path against the bare ControlNet pipeline.

A full-size random SD1.5 ControlNet (``ControlNetModel.from_unet`` of the full-size UNet, :func:`bench.gpu_models.
build_controlnet`) beside the full-size SD1.5 model, registered as the owner's ``[controlnet.big-canny]``. Each
control job uploads a picture with shapes (as a member would), which the engine turns into a Canny map:

- ``full_s``: ``/imagine control:`` through the whole path (upload checked and stored, SQLite, worker, engine process
  with the ControlNet pipeline made by ``from_pipe``, files written, job recorded);
- ``bare_s``: the same ControlNet pipeline call (the ready Canny map, ``controlnet_conditioning_scale`` 1) on the
  model as the engine loads it, in this process; ``bare_plain_s``: the plain txt2img call of the same model, so
  ``controlnet_cost`` is what the ControlNet adds to a render (the ``control`` cost multiplier is 1.5);
- ``control_map_s``: the Canny map of the picture at the job's size; ``peak_gib``: peak GPU memory of the bare calls.
"""

from __future__ import annotations

import gc
import io
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from bench.bare import bare_runs, with_sampler
from bench.gpu_image_jobs import decoded, timed_call, timed_job, warm_runs
from bench.gpu_models import build_controlnet, build_model

if TYPE_CHECKING:
    from bench.gpu import Bench

CONTROLNET_NAME = "big-canny"


def shapes_png(width: int, height: int) -> bytes:
    """A picture with clear edges (a sun, a house, a horizon), as a member's control image."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (40, 60, 90))
    pen = ImageDraw.Draw(image)
    pen.rectangle((0, height * 2 // 3, width, height), fill=(60, 120, 50))
    pen.ellipse((width // 10, height // 10, width // 3, height // 3), fill=(250, 220, 80))
    pen.rectangle((width // 2, height // 3, width * 4 // 5, height * 2 // 3), fill=(200, 190, 170))
    pen.polygon([(width // 2, height // 3), (width * 13 // 20, height // 6), (width * 4 // 5, height // 3)], fill="red")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def control_job(service: Any, picture: bytes, seed: int) -> float:
    """Seconds from submitting one control job (the upload received and attached first) until it is recorded done."""
    from bot.actors import Actor
    from bot.jobs import Kind, Status
    from bot.requests.request_options import ImageInput, RequestOptions

    console = Actor.console()
    announced = RequestOptions(control=ImageInput.announced(), control_mode="canny")
    prepared = await service.service.prepare(console, f"a red fox in the snow --seed {seed}", announced)
    received = await service.service.receive_image(picture)
    prepared = service.service.attach_images(prepared, None, None, received)
    elapsed, done = await timed_job(service, prepared, received)
    if done.kind is not Kind.CONTROL or done.status is not Status.COMPLETED:
        raise RuntimeError(f"control job {done.id} is a {done.kind.value} job, {done.status.value}: {done.error}")
    return elapsed


def bare_control_call(pipe: Any, params: Any, conditioning: Any) -> float:
    """Seconds of one ControlNet pipeline call making the job's images, as the engine's call does."""
    return timed_call(
        pipe,
        params,
        prompt=[params.prompt] * params.images,
        image=[conditioning] * params.images,
        controlnet_conditioning_scale=1.0,
    )


async def case_controlnet(bench: Bench, runs: int) -> None:
    """Full path against the bare ControlNet pipeline call on full-size SD1.5, 4 images, 20 steps."""
    import diffusers

    from bench.gpu import Service, _empty_cache, engine_pipeline, median
    from engine.control_maps import control_map

    models = bench.root / "models"
    folder = build_model("sd15", models, tiny=bench.rehearse)
    controlnet_dir = build_controlnet(models, tiny=bench.rehearse)
    spec = {"source": str(controlnet_dir), "family": "sd15", "modes": ["canny"]}
    settings = bench.settings("sd15", folder, controlnet={CONTROLNET_NAME: spec})
    async with Service(settings) as service:
        params = await service.params()
        picture = shapes_png(params.width, params.height)
        await control_job(service, picture, 1000)
        full = [await control_job(service, picture, 2000 + run) for run in range(runs)]
        start_s = service.start_s
    model = engine_pipeline(settings)
    net = diffusers.ControlNetModel.from_pretrained(str(controlnet_dir), dtype=model.dtype).to(model.device)
    pipe = with_sampler(diffusers.AutoPipelineForText2Image.from_pipe(model.pipeline, controlnet=net), params.sampler)
    pipe.set_progress_bar_config(disable=True)
    source = decoded(picture)
    started = time.perf_counter()
    conditioning = control_map(source, "canny", (params.width, params.height))
    map_s = time.perf_counter() - started
    bare, peak = warm_runs(partial(bare_control_call, pipe, params, conditioning), runs)
    plain = bare_runs(with_sampler(model.pipeline, params.sampler), params, runs)
    parameters = sum(parameter.numel() for parameter in net.parameters())
    del model, pipe, net
    gc.collect()
    _empty_cache()
    bench.record(
        "controlnet",
        {
            "size": f"{params.width}x{params.height}",
            "steps": params.steps,
            "images": params.images,
            "controlnet_parameters_m": round(parameters / 1e6, 1),
            "engine_start_s": round(start_s, 2),
            "control_map_s": round(map_s, 4),
            "bare_s": median(bare),
            "bare_plain_s": median(plain),
            "controlnet_cost": round(median(bare) / median(plain) - 1, 4),
            "full_s": median(full),
            "full_over_bare": round(median(full) / median(bare), 3),
            "peak_gib": peak,
        },
    )
