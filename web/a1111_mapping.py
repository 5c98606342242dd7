"""An A1111 ``txt2img``/``img2img`` request in imaginebot's terms: pure translations, no I/O.

The request becomes what every other surface hands the core: one prompt text per iteration (``n_iter``) written
with our flags (``--seed``, ``--steps``, ``--cfg``, ``--sampler``, ``--model``, ``--tile``, ``--no`` for the negative
prompt), :class:`~bot.core.RequestOptions` (``size`` from width and height, ``images`` from ``batch_size``, the
announced init image, mask and denoising strength) and a lane. Checkpoint titles (``sd_model_checkpoint``) name our
models. Sampler names are translated by :mod:`web.a1111_samplers`; finished jobs are written back in A1111's words
by :mod:`web.a1111_info`.

On a guidance-distilled model (FLUX.1) A1111's ``cfg_scale`` and ``negative_prompt`` do not apply: there is no
classifier-free guidance for them to act through. They are ignored, as Forge (the A1111 fork that runs FLUX.1) does
at its FLUX.1 CFG scale of 1, rather than refused, since A1111 clients send both with every request; Forge's
``distilled_cfg_scale`` is the guidance (``--cfg``) of a FLUX.1 model that takes one (FLUX.1-dev).

A1111 fields that have no counterpart here (styles, override settings other than the checkpoint, face restoration,
hires fix, variation seeds, scripts, ...) are accepted and ignored, as A1111 ignores what it does not know. Fields
left out get this server's defaults (the member's /settings, then the model's), not A1111's.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core import ImageInput, Lane, RequestOptions
from web.a1111_requests import DEFAULT_STRENGTH, A1111RequestError, Img2ImgRequest, Txt2ImgRequest
from web.a1111_samplers import resolve_sampler

MAX_SEED = 2**32 - 1
A1111_DEFAULT_SIDE = 512
"""What A1111 renders when a request gives only one of width and height: the other is 512."""


# --- models -------------------------------------------------------------------------------------------------------


def sd_model_item(name: str) -> dict[str, Any]:
    """``GET /sd-models``: one of our models as A1111 lists a checkpoint. Its title, name and file name are the
    model's name here (what ``--model`` takes); no hash is computed and no server path is shown."""
    return {"title": name, "model_name": name, "hash": None, "sha256": None, "filename": name, "config": None}


_TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]\s*$")
_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".bin")


def resolve_checkpoint(title: str, models: Sequence[str]) -> str:
    """Our model for an ``sd_model_checkpoint`` value: its title from ``GET /sd-models``, or an A1111 title of the
    same name (``name.safetensors [hash]``, a path). Raises A1111RequestError naming the models the member may use."""
    text = _TITLE_HASH.sub("", str(title)).strip()
    text = re.split(r"[\\/]", text)[-1]
    for extension in _EXTENSIONS:
        if text.lower().endswith(extension):
            text = text[: -len(extension)]
    for name in models:
        if name.lower() == text.lower():
            return name
    raise A1111RequestError(
        "unknown_model", f"model `{title}` is not available to you on this server; use one of: {', '.join(models)}"
    )


# --- a request in our words ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Translated:
    """An A1111 generation request as the core takes it: one prompt text per job (``n_iter``), the options they
    share (the image and mask only announced: the surface receives and attaches them), and the lane."""

    prompts: tuple[str, ...]
    options: RequestOptions
    lane: Lane | None
    sampler: str | None


def guidance_settings(request: Txt2ImgRequest, guidance: str) -> tuple[float | None, str]:
    """The ``--cfg`` (None: the model's default) and negative prompt a request's jobs get, by how the model is
    guided (:attr:`bot.core.ModelChoice.guidance`): on ``cfg``, A1111's ``cfg_scale`` and ``negative_prompt``; on a
    guidance-distilled model, Forge's ``distilled_cfg_scale`` (``distilled``; ``none`` takes no guidance value) and
    no negative prompt (see the module's note)."""
    if guidance == "cfg":
        return request.cfg_scale, request.negative_prompt or ""
    return (request.distilled_cfg_scale if guidance == "distilled" else None), ""


def escape_prompt(text: str) -> str:
    """A1111 prompt text taken literally by our prompt syntax: braces are permutations here and backslashes their
    escapes, so both are escaped (A1111's own ``\\(`` escapes reach the engine as written)."""
    return text.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")


def format_cfg(value: float) -> str:
    """A CFG scale as ``--cfg`` takes it (at most three decimals)."""
    return f"{round(value, 3):.3f}".rstrip("0").rstrip(".")


def prompt_text(
    prompt: str,
    negative_prompt: str = "",
    *,
    seed: int | None = None,
    steps: int | None = None,
    cfg: float | None = None,
    sampler: str | None = None,
    model: str | None = None,
    tile: bool = False,
) -> str:
    """One job's prompt in our syntax: the text, then the flags; ``--no`` goes last (it takes every word after
    it). A negative prompt with no words in it is left out."""
    parts = [escape_prompt(prompt).strip()]
    if model is not None:
        parts.append(f"--model {model}")
    if sampler is not None:
        parts.append(f"--sampler {sampler}")
    if steps is not None:
        parts.append(f"--steps {steps}")
    if cfg is not None:
        parts.append(f"--cfg {format_cfg(cfg)}")
    if seed is not None:
        parts.append(f"--seed {seed}")
    if tile:
        parts.append("--tile")
    negative = negative_prompt or ""
    if any(part.strip() for part in negative.split(",")):
        parts.append(f"--no {escape_prompt(negative).strip()}")
    return " ".join(parts)


def iteration_seeds(seed: int | None, batch_size: int, n_iter: int) -> list[int | None]:
    """Each job's first seed: A1111's ``seed + index`` over every image of every iteration (so job ``i`` starts at
    ``seed + i * batch_size``); None for each when the seed is random (-1 or any negative)."""
    if seed is None or seed < 0:
        return [None] * n_iter
    return [(seed + index * batch_size) % (MAX_SEED + 1) for index in range(n_iter)]


def requested_size(width: int | None, height: int | None) -> tuple[int, int] | None:
    """The exact size asked for: None when neither side is given (the model's size), else A1111's 512 for a side
    left out."""
    if width is None and height is None:
        return None
    return (width or A1111_DEFAULT_SIDE, height or A1111_DEFAULT_SIDE)


def parse_lane(value: str | None) -> Lane | None:
    """The ``lane`` field; None: the member's default lane. Raises A1111RequestError."""
    if value is None or not value.strip():
        return None
    try:
        return Lane(value.strip().lower())
    except ValueError:
        raise A1111RequestError(
            "unknown_lane", f"lane `{value}` is not a lane; use one of: {', '.join(lane.value for lane in Lane)}"
        ) from None


def translate(
    request: Txt2ImgRequest,
    *,
    images_per_job: int,
    max_jobs: int,
    available_samplers: Collection[str],
    model_samplers: Collection[str] | None = None,
    model: str = "",
    model_override: str | None = None,
    guidance: str = "cfg",
) -> Translated:
    """An A1111 generation request in our words (see the module's note). ``model`` is the model the jobs will use
    (for the samplers it allows, and how it is ``guidance``-guided); ``model_override`` the one the request itself
    names (``--model``). Raises A1111RequestError; the core checks everything else (limits of steps, CFG, size,
    credits, moderation)."""
    batch_size = request.batch_size or 1
    n_iter = request.n_iter or 1
    if not 1 <= batch_size <= images_per_job:
        raise A1111RequestError(
            "invalid_request", f"batch_size {batch_size} is out of range; a job makes 1 to {images_per_job} images"
        )
    if not 1 <= n_iter <= max_jobs:
        raise A1111RequestError(
            "invalid_request", f"n_iter {n_iter} is out of range; this server takes 1 to {max_jobs} jobs at once"
        )
    sampler = resolve_sampler(
        request.sampler_name if request.sampler_name not in (None, "") else request.sampler_index,
        request.scheduler,
        available=available_samplers,
        allowed=model_samplers,
        model=model,
    )
    options = RequestOptions(images=batch_size, size=requested_size(request.width, request.height))
    if isinstance(request, Img2ImgRequest):
        if not request.init_images:
            raise A1111RequestError("invalid_request", "img2img needs init_images: the image to start from")
        if request.mask and request.inpainting_mask_invert:
            raise A1111RequestError(
                "invalid_request",
                "inpainting_mask_invert is not supported here: send the mask inverted (white is repainted)",
            )
        strength = request.denoising_strength if request.denoising_strength is not None else DEFAULT_STRENGTH
        options = RequestOptions(
            image=ImageInput.announced(),
            mask=ImageInput.announced() if request.mask else None,
            strength=strength,
            images=options.images,
            size=options.size,
        )
    cfg, negative_prompt = guidance_settings(request, guidance)
    prompts = tuple(
        prompt_text(
            request.prompt,
            negative_prompt,
            seed=seed,
            steps=request.steps,
            cfg=cfg,
            sampler=sampler,
            model=model_override,
            tile=bool(request.tiling),
        )
        for seed in iteration_seeds(request.seed, batch_size, n_iter)
    )
    return Translated(prompts, options, parse_lane(request.lane), sampler)
