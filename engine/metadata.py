"""A1111-style image metadata: the ``parameters`` PNG text chunk, and in a JPEG the EXIF user comment holding the
same text, as image tools already read them."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from engine.png_encoding import encode_png
from engine.protocol import RenderTask
from engine.samplers import sampler_label, schedule_label

if TYPE_CHECKING:
    from engine.render import ImageInfo

PARAMETERS_KEY = "parameters"
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
UNICODE_PREFIX = b"UNICODE\x00"
"""An EXIF user comment's character code for UTF-16 (big-endian, as A1111 writes and reads it)."""


@dataclass(frozen=True)
class ImageParameters:
    prompt: str
    negative_prompt: str
    steps: int
    sampler: str
    cfg: float
    seed: int
    width: int
    height: int
    model: str
    extra: tuple[tuple[str, str], ...] = ()
    """More ``Key: value`` settings A1111 knows, e.g. ``("Denoising strength", "0.75")``."""
    distilled: bool = False
    """``cfg`` is a guidance-distilled model's guidance input (FLUX.1), not a CFG scale: written as Forge writes it,
    ``CFG scale: 1, Distilled CFG Scale: 3.5`` (a model without a guidance input, FLUX.1-schnell: ``CFG scale: 1``)."""


def parameters_for(
    task: RenderTask,
    model: str,
    width: int,
    height: int,
    *,
    image: ImageInfo | None = None,
    loras: Sequence[tuple[str, float]] = (),
    extra: Sequence[tuple[str, str]] = (),
    distilled: bool = False,
) -> ImageParameters:
    """The metadata of a file the engine writes for ``task`` (the one place it is built).

    With ``image``: one image, as ``image`` says it was made (its prompt, steps, sampler, CFG and seed), plus the
    denoising strength it used and the ``loras`` applied. Without: the job as a whole (its grid or sweep sheet), in
    the task's own words and first seed. ``width`` and ``height`` are the size the text states (one image's for an
    image and for a grid, the whole sheet's for a sweep); ``extra`` adds settings; ``distilled``: the model's
    ``--cfg`` is a distilled guidance (FLUX.1, see :attr:`ImageParameters.distilled`).
    """
    settings = list(extra)
    if task.control_image:  # as A1111's ControlNet extension writes it
        control = f"Module: {task.control_mode}, Model: {task.controlnet}, Weight: {task.control_weight:g}"
        settings.append(("ControlNet 0", f'"{control}"'))
    if image is None:
        prompt, steps, sampler, cfg, seed = task.prompt, task.steps, task.sampler, task.cfg, task.seeds[0]
    else:
        prompt, steps, sampler, cfg, seed = image.prompt, image.steps, image.sampler, image.cfg, image.seed
        if image.strength is not None:
            settings.append(("Denoising strength", f"{image.strength:g}"))
        if loras:
            settings.append(("Lora weights", ", ".join(f"{name}: {weight:g}" for name, weight in loras)))
    if schedule_label(sampler):  # A1111 writes a sampler's schedule apart: "Sampler: Euler a, Schedule type: …"
        settings.insert(0, ("Schedule type", schedule_label(sampler)))
    return ImageParameters(
        prompt=prompt,
        negative_prompt=task.negative_prompt,
        steps=steps,
        sampler=sampler_label(sampler),
        cfg=cfg,
        seed=seed,
        width=width,
        height=height,
        model=model,
        extra=tuple(settings),
        distilled=distilled,
    )


def format_parameters(params: ImageParameters) -> str:
    """The text A1111 writes: prompt, ``Negative prompt: …``, then the settings line."""
    lines = [params.prompt]
    if params.negative_prompt:
        lines.append(f"Negative prompt: {params.negative_prompt}")
    lines.append(
        f"Steps: {params.steps}, Sampler: {params.sampler}, {guidance_text(params.cfg, distilled=params.distilled)}, "
        f"Seed: {params.seed}, Size: {params.width}x{params.height}, Model: {params.model}"
        + "".join(f", {key}: {value}" for key, value in params.extra)
    )
    return "\n".join(lines)


DISTILLED_CFG_KEY = "Distilled CFG Scale"
"""Where Forge, the A1111 fork that runs FLUX.1, writes a FLUX.1 image's guidance (its ``CFG scale`` is 1: none)."""


def guidance_text(cfg: float, *, distilled: bool) -> str:
    """The guidance settings of a parameters line: ``CFG scale: 7``; for a guidance-distilled model (``distilled``)
    ``CFG scale: 1, Distilled CFG Scale: 3.5``, or only ``CFG scale: 1`` when it takes no guidance (``cfg`` 0)."""
    if not distilled:
        return f"CFG scale: {cfg:g}"
    return f"CFG scale: 1, {DISTILLED_CFG_KEY}: {cfg:g}" if cfg > 0 else "CFG scale: 1"


def png_bytes(image: Image.Image, params: ImageParameters) -> bytes:
    """Encode ``image`` as PNG with the parameters chunk (see :mod:`engine.png_encoding`: fast, and as small as
    Pillow's level 1). Deterministic: same pixels, same bytes."""
    return encode_png(image, {PARAMETERS_KEY: format_parameters(params)})


def jpeg_bytes(image: Image.Image, params: ImageParameters, *, quality: int) -> bytes:
    """Encode ``image`` as a JPEG of ``quality`` with the parameters text as its EXIF user comment."""
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = UNICODE_PREFIX + format_parameters(params).encode("utf-16-be")
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


def read_parameters(data: bytes) -> str | None:
    """The parameters text of a PNG (its text chunk) or a JPEG (its EXIF user comment), or None when it has none."""
    with Image.open(io.BytesIO(data)) as image:
        value = image.info.get(PARAMETERS_KEY)
        comment = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    if isinstance(value, str):
        return value
    if isinstance(comment, bytes) and comment.startswith(UNICODE_PREFIX):
        return comment.removeprefix(UNICODE_PREFIX).decode("utf-16-be", errors="replace")
    return None
