"""``bench.gpu``'s ``ip_adapter`` case: an image-prompted job through the full path against the bare IP-Adapter call.

A full-size random SD1.5 base IP-Adapter with its ViT-H/14 image encoder (:func:`bench.gpu_models.
build_ip_adapter_model`) beside the full-size SD1.5 model, registered as the owner's ``[ip_adapters.big-ip-adapter]``.
Each job uploads a 512² picture as its image prompt (as a member would), at ``--iw 1``:

- ``full_s``: ``/imagine image_prompt:`` through the whole path (upload checked and stored, SQLite, worker, engine
  process switching the adapter on, the image encoded, files written, job recorded); ``first_job_s``: the first
  such job, which loads the adapter into the engine's model;
- ``full_plain_s``: a plain /imagine on the same engine after those jobs (the adapter loaded but off): what image
  prompts cost the jobs that have none (nothing, if the UNet is truly back as it was);
- ``bare_s``: diffusers' own IP-Adapter call (``ip_adapter_image``, ``num_images_per_prompt``) on the model as the
  engine loads it, in this process; ``bare_plain_s``: the plain txt2img call before the adapter is loaded, so
  ``ip_adapter_cost`` is what the adapter adds to a render; ``adapter_load_s``: ``load_ip_adapter`` there;
  ``peak_gib``: peak GPU memory of the bare IP-Adapter calls.
"""

from __future__ import annotations

import gc
import io
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from bench.bare import bare_runs, synchronize, with_sampler
from bench.gpu_image_jobs import decoded, timed_call, timed_job, warm_runs
from bench.gpu_models import build_ip_adapter_model, build_model

if TYPE_CHECKING:
    from bench.gpu import Bench

ADAPTER_NAME = "big-ip-adapter"
PICTURE_SIDE = 512


def reference_png(side: int = PICTURE_SIDE) -> bytes:
    """A picture with colours and shapes, as a member's image prompt."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (side, side), (30, 80, 140))
    pen = ImageDraw.Draw(image)
    pen.ellipse((side // 8, side // 8, side // 2, side // 2), fill=(250, 200, 60))
    pen.rectangle((side // 2, side // 2, side * 7 // 8, side * 7 // 8), fill=(180, 40, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def image_prompt_job(service: Any, picture: bytes, seed: int) -> float:
    """Seconds from submitting one image-prompted job (the upload received first) until it is recorded done."""
    from bot.actors import Actor
    from bot.jobs import Kind, Status
    from bot.requests.request_options import RequestOptions

    console = Actor.console()
    received = await service.service.receive_image(picture)
    options = RequestOptions(image_prompts=(received.input,))
    prepared = await service.service.prepare(console, f"a red fox in the snow --seed {seed} --iw 1", options)
    elapsed, done = await timed_job(service, prepared, received)
    if done.kind is not Kind.IMAGINE or done.status is not Status.COMPLETED or not done.params.image_prompts:
        raise RuntimeError(f"image prompt job {done.id} is a {done.kind.value} job, {done.status.value}: {done.error}")
    return elapsed


def bare_ip_adapter_call(pipe: Any, params: Any, image: Any) -> float:
    """Seconds of diffusers' own IP-Adapter call making the job's images from one image prompt."""
    return timed_call(pipe, params, prompt=params.prompt, num_images_per_prompt=params.images, ip_adapter_image=image)


async def case_ip_adapter(bench: Bench, runs: int) -> None:
    """Full path against the bare IP-Adapter call on full-size SD1.5, 4 images, 20 steps, one image prompt."""
    from bench.gpu import Service, _empty_cache, engine_pipeline, median

    models = bench.root / "models"
    folder = build_model("sd15", models, tiny=bench.rehearse)
    adapter_dir = build_ip_adapter_model(models, tiny=bench.rehearse)
    adapters = {ADAPTER_NAME: {"source": str(adapter_dir), "family": "sd15"}}
    settings = bench.settings("sd15", folder, ip_adapters=adapters)
    picture = reference_png()
    async with Service(settings) as service:
        params = await service.params()
        first = await image_prompt_job(service, picture, 1000)
        full = [await image_prompt_job(service, picture, 2000 + run) for run in range(runs)]
        plain_after = [await service.jobs(1, 3000 + run) for run in range(runs)]
        start_s = service.start_s
    model = engine_pipeline(settings)
    pipe = with_sampler(model.pipeline, params.sampler)
    plain = bare_runs(pipe, params, runs)
    started = time.perf_counter()
    pipe.load_ip_adapter(
        str(adapter_dir),
        subfolder="",
        weight_name="ip-adapter.safetensors",
        image_encoder_folder="image_encoder",
        local_files_only=True,
    )
    synchronize()
    load_s = time.perf_counter() - started
    encoder_parameters = sum(parameter.numel() for parameter in pipe.image_encoder.parameters())
    image = decoded(picture)
    bare, peak = warm_runs(partial(bare_ip_adapter_call, pipe, params, image), runs)
    del model, pipe
    gc.collect()
    _empty_cache()
    bench.record(
        "ip_adapter",
        {
            "size": f"{params.width}x{params.height}",
            "steps": params.steps,
            "images": params.images,
            "image_encoder_parameters_m": round(encoder_parameters / 1e6, 1),
            "engine_start_s": round(start_s, 2),
            "adapter_load_s": round(load_s, 3),
            "first_job_s": round(first, 3),
            "full_s": median(full),
            "full_plain_s": median(plain_after),
            "bare_s": median(bare),
            "bare_plain_s": median(plain),
            "ip_adapter_cost": round(median(bare) / median(plain) - 1, 4),
            "full_over_bare": round(median(full) / median(bare), 3),
            "peak_gib": peak,
        },
    )
