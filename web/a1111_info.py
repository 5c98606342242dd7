"""Finished and running jobs in A1111's words: ``info`` (a JSON string with A1111's keys), ``parameters`` (the
request with its defaults filled), progress and time left, and A1111's parsed parameters text (``png-info``). Pure
functions, no I/O.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.core import ImageResult, Job
from web.a1111_requests import Txt2ImgRequest
from web.a1111_samplers import AUTOMATIC, a1111_sampler

DISTILLED_CFG_KEY = "Distilled CFG Scale"
"""Forge's key for a FLUX.1 job's guidance (in ``extra_generation_params`` and the parameters text)."""
VERSION = "imaginebot"
"""A1111's ``version`` in ``info``."""


# --- finished jobs in A1111's words -------------------------------------------------------------------------------


def job_timestamp(when: float) -> str:
    """A1111's ``job_timestamp``: local time as ``YYYYmmddHHMMSS``."""
    return datetime.datetime.fromtimestamp(when).strftime("%Y%m%d%H%M%S")


def generation_info(
    finished: Sequence[tuple[Job, Sequence[ImageResult]]],
    infotexts: Sequence[str],
    *,
    batch_size: int,
    styles: Sequence[str] = (),
    failures: Sequence[str] = (),
    distilled: bool = False,
) -> dict[str, Any]:
    """A1111's ``info`` (before it is made a JSON string) for the images of the completed jobs, in order, with
    ``infotexts`` the parameters text of each image. The first job's settings stand for the request, as in A1111.
    ``distilled``: their model's guidance is distilled (FLUX.1), written as Forge writes it (``cfg_scale`` 1, the
    guidance as ``Distilled CFG Scale``). Beyond A1111's keys: ``job_ids`` (the jobs in the native API) and
    ``failures`` (why a job made no images)."""
    jobs = [job for job, _images in finished]
    first = jobs[0]
    params = first.params
    images = [(job, image) for job, found in finished for image in found]
    label, schedule = a1111_sampler(params.sampler)
    extra: dict[str, Any] = {}
    if schedule not in (AUTOMATIC, "Karras"):
        extra["Schedule type"] = schedule
    cfg_scale, distilled_cfg = a1111_guidance(params.cfg, distilled=distilled)
    if distilled_cfg is not None:
        extra[DISTILLED_CFG_KEY] = distilled_cfg
    strength = params.strength if first.kind.value in ("img2img", "inpaint") else None
    return {
        "prompt": params.prompt,
        "all_prompts": [job.params.prompt for job, _image in images],
        "negative_prompt": params.negative_prompt,
        "all_negative_prompts": [job.params.negative_prompt for job, _image in images],
        "seed": images[0][1].seed if images else params.seed,
        "all_seeds": [image.seed for _job, image in images],
        "subseed": -1,
        "all_subseeds": [-1 for _ in images],
        "subseed_strength": 0,
        "width": images[0][1].width if images else params.width,
        "height": images[0][1].height if images else params.height,
        "sampler_name": label,
        "scheduler": schedule,
        "cfg_scale": cfg_scale,
        "steps": params.steps,
        "batch_size": batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": params.model,
        "sd_model_hash": None,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": strength,
        "extra_generation_params": extra,
        "index_of_first_image": 0,
        "infotexts": list(infotexts),
        "styles": list(styles),
        "job_timestamp": job_timestamp(first.started_at or first.created_at),
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": VERSION,
        "job_ids": [job.id for job in jobs],
        "failures": list(failures),
    }


def a1111_guidance(cfg: float, *, distilled: bool) -> tuple[float, float | None]:
    """A job's ``--cfg`` as A1111's ``cfg_scale`` and Forge's ``distilled_cfg_scale`` (None: not one): on a
    guidance-distilled model (FLUX.1) the CFG scale is 1 (none) and the ``--cfg`` its distilled guidance, which
    FLUX.1-schnell (``--cfg`` 0) does not take."""
    if not distilled:
        return cfg, None
    return 1.0, (cfg if cfg > 0 else None)


def filled_parameters(request: Txt2ImgRequest, first: Job, *, distilled: bool = False) -> dict[str, Any]:
    """A1111's ``parameters``: the request as received (unknown fields too) with what it left out filled in from
    the job that was made (``distilled``: as :func:`generation_info`); the images sent are not echoed back (as
    A1111 without ``include_init_images``)."""
    values = request.model_dump()
    params = first.params
    label, schedule = a1111_sampler(params.sampler)
    cfg_scale, distilled_cfg = a1111_guidance(params.cfg, distilled=distilled)
    filled = {
        "steps": params.steps,
        "cfg_scale": cfg_scale,
        "distilled_cfg_scale": distilled_cfg,
        "width": params.width,
        "height": params.height,
        "sampler_name": label,
        "scheduler": schedule,
        "batch_size": params.images,
        "n_iter": 1,
        "negative_prompt": "",
        "seed": -1,
        "tiling": params.tile,
        "lane": first.lane.value,
    }
    for key, value in filled.items():
        if values.get(key) is None:
            values[key] = value
    if "init_images" in values:
        values["init_images"] = None
        values["mask"] = None
        if values.get("denoising_strength") is None:
            values["denoising_strength"] = params.strength
    return values


# --- progress -----------------------------------------------------------------------------------------------------


def progress_and_eta(step: int, total: int, elapsed_s: float) -> tuple[float, float]:
    """A running job's progress (0 to 1) and A1111's ``eta_relative`` (seconds left, from the pace so far; 0 until
    the first step is in)."""
    if total <= 0 or step <= 0:
        return 0.0, 0.0
    fraction = min(step / total, 1.0)
    return fraction, max(elapsed_s / fraction - elapsed_s, 0.0)


# --- image metadata -----------------------------------------------------------------------------------------------

_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def parse_infotext(text: str) -> dict[str, Any]:
    """A1111's parsed parameters text: ``Prompt``, ``Negative prompt`` and each ``Key: value`` of the last line,
    ``Size`` as ``Size-1`` and ``Size-2``, quoted values unquoted; values stay text, as A1111 gives them."""
    parsed: dict[str, Any] = {}
    if not text.strip():
        return parsed
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:") or negative:
            negative.append(line.removeprefix("Negative prompt:").strip() if not negative else line)
        else:
            prompt.append(line)
    parsed["Prompt"] = "\n".join(prompt)
    parsed["Negative prompt"] = "\n".join(negative)
    for key, value in _PARAM.findall(last):
        value = value.strip()
        if len(value) > 1 and value[0] == '"' and value[-1] == '"':
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        size = _SIZE.match(value) if isinstance(value, str) else None
        if size is not None:
            parsed[f"{key}-1"] = size.group(1)
            parsed[f"{key}-2"] = size.group(2)
        else:
            parsed[key] = value
    return parsed


def text_items(info: Mapping[str, Any]) -> dict[str, str]:
    """An image's text entries besides ``parameters`` (A1111's ``items``)."""
    return {str(key): value for key, value in info.items() if isinstance(value, str) and key != "parameters"}
