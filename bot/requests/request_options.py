"""Turn a prompt plus image-task options (image, mask, strength, model, sweeps) into a job's params, and the params
of a job made from one finished image (the result buttons). Pure: no I/O.

Used by :class:`bot.application.service.ImagineService`; every rule here runs before anything is charged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from bot.errors import PromptError
from bot.jobs import Kind, RenderParams
from bot.requests.sweep_spec import SweepLimits, parse_sweeps, rendered_prompts
from engine.canvas import ZOOM_FACTORS, mask_shape_problem, pan_size, upscaled_size


@dataclass(frozen=True)
class ImageInput:
    """An image a request starts from: where it is stored (once received and checked) and its size.

    ``path`` None means an attachment that comes with the request but is not downloaded yet: preparation then
    checks everything that does not need the image's pixels, so a bad flag is refused before any download.
    """

    path: Path | None
    width: int = 0
    height: int = 0

    @classmethod
    def announced(cls) -> ImageInput:
        """An attachment still to be downloaded and checked."""
        return cls(None)

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.path is not None and self.width and self.height else None


@dataclass(frozen=True)
class RequestOptions:
    """What a command adds to a prompt: a source image, a mask, a strength and sweep axes."""

    image: ImageInput | None = None
    mask: ImageInput | None = None
    strength: float | None = None
    sweeps: tuple[str, ...] = ()
    images: int | None = None
    """How many images the job makes (1 to the server's images_per_job); None: the server's number."""
    size: tuple[int, int] | None = None
    """An exact width and height instead of the one ``--ar`` and the model's base size give (the APIs)."""
    control: ImageInput | None = None
    """A ControlNet's control image (see :mod:`bot.requests.control`)."""
    control_mode: str | None = None
    """What the control image is turned into: canny, depth, lineart, scribble or raw; None: canny."""
    image_prompts: tuple[ImageInput, ...] = ()
    """Images that prompt the job through the IP-Adapter (``image_prompt``), announced before they are received."""


@dataclass(frozen=True)
class TaskOptions:
    """What ``python -m bot generate`` adds to a prompt: a model and files to read (``--image``, ``--mask``)."""

    model: str | None = None
    image: Path | None = None
    mask: Path | None = None
    strength: float | None = None
    sweeps: tuple[str, ...] = ()
    control: Path | None = None
    """``--control FILE``: a ControlNet's control image."""
    control_mode: str | None = None
    control_weight: float | None = None
    """``--cw``: the control weight, added to the prompt as that flag."""
    image_prompts: tuple[Path, ...] = ()
    """``--image-prompt FILE``: images that prompt the job through the IP-Adapter."""
    image_weight: float | None = None
    """``--iw``: how strongly they steer, added to the prompt as that flag."""


def kind_for(options: RequestOptions) -> Kind:
    """Sweep if any sweep axis; inpaint with a mask; img2img with an image; else txt2img."""
    if options.sweeps:
        return Kind.SWEEP
    if options.mask is not None:
        return Kind.INPAINT
    if options.image is not None:
        return Kind.IMG2IMG
    return Kind.IMAGINE


def check_mask_shape(image: ImageInput | None, mask: ImageInput | None) -> None:
    """A mask must have its image's shape; checked once both are received (an announced one has no size yet)."""
    image_size = image.size if image is not None else None
    mask_size = mask.size if mask is not None else None
    if image_size is not None and mask_size is not None:
        problem = mask_shape_problem(mask_size, image_size)
        if problem is not None:
            raise PromptError(problem, flag="mask")


def apply_options(params: RenderParams, options: RequestOptions, limits: SweepLimits | None = None) -> RenderParams:
    """``params`` with the options applied. Raises PromptError naming the option to fix."""
    if options.mask is not None and options.image is None:
        raise PromptError("a mask needs an image: the mask says which part of that image to repaint", flag="mask")
    if options.strength is not None and not 0 < options.strength <= 1:
        raise PromptError(f"strength {options.strength:g} must be above 0 and at most 1", flag="strength")
    if options.strength is not None and options.image is None:
        raise PromptError("strength needs an image (it says how far to move away from that image)", flag="strength")
    check_mask_shape(options.image, options.mask)
    changes: dict[str, object] = {}
    if options.image is not None:
        changes["init_image"] = str(options.image.path) if options.image.path is not None else ""
    if options.mask is not None:
        changes["mask_image"] = str(options.mask.path) if options.mask.path is not None else ""
    if options.strength is not None:
        changes["strength"] = options.strength
    elif options.mask is not None:
        changes["strength"] = 1.0
    if options.sweeps:
        try:
            sweep = parse_sweeps(options.sweeps, limits)
            rendered_prompts(params.prompt, sweep)
        except ValueError as error:
            raise PromptError(str(error), flag="sweep") from None
        if options.image is None and any(name == "strength" for name, _values in sweep):
            raise PromptError(
                "a strength sweep needs an image: strength says how far to move away from it", flag="sweep"
            )
        changes["sweep"] = sweep
        changes["images"] = 1
    return dataclasses.replace(params, **changes)  # type: ignore[arg-type]


VARIATION_STRENGTH = {"subtle": 0.35, "strong": 0.65}
UPSCALE_STRENGTH = 0.3
UPSCALE_FACTOR = 2.0


def follow_up_size(kind: Kind, image_size: tuple[int, int], multiple: int, *, zoom: float, pan: str) -> tuple[int, int]:
    """The size of the image a follow-up of an image of ``image_size`` renders (what it is priced and limited by)."""
    if kind is Kind.UPSCALE:
        return upscaled_size(image_size, UPSCALE_FACTOR, multiple)
    if kind is Kind.PAN:
        return pan_size(image_size, pan, multiple)
    if kind is Kind.ZOOM and zoom not in ZOOM_FACTORS:
        raise ValueError(f"zoom={zoom:g} is not one of {', '.join(f'{factor:g}' for factor in ZOOM_FACTORS)}")
    return image_size


def follow_up_params(
    parent: RenderParams,
    kind: Kind,
    image_path: str,
    seed: int,
    *,
    variation: str = "strong",
    zoom: float = 2.0,
    pan: str = "",
    size: tuple[int, int] | None = None,
) -> RenderParams:
    """Params of a job made from one image of a finished job (U, V, 🔄, zoom, pan buttons).

    Reroll renders the parent's prompt again with ``seed``; the others start from ``image_path``, whose output
    ``size`` (see :func:`follow_up_size`) becomes the job's width and height. Upscale gives one image, the others a
    full grid. Raises ValueError for a kind that is not a follow-up.
    """
    if kind is Kind.REROLL:
        return dataclasses.replace(parent, seed=seed)
    base = dataclasses.replace(parent, init_image=image_path, mask_image="", sweep=(), seed=seed)
    if size is not None:
        base = dataclasses.replace(base, width=size[0], height=size[1])
    if kind is Kind.VARIATION:
        if variation not in VARIATION_STRENGTH:
            raise ValueError(f"variation={variation!r} is not one of: {', '.join(VARIATION_STRENGTH)}")
        return dataclasses.replace(base, strength=VARIATION_STRENGTH[variation])
    if kind is Kind.UPSCALE:
        # --stop does not apply to an upscale (as on Midjourney): it finishes the image
        return dataclasses.replace(base, strength=UPSCALE_STRENGTH, images=1, upscale_factor=UPSCALE_FACTOR, stop=100)
    if kind is Kind.ZOOM:
        return dataclasses.replace(base, zoom=zoom, strength=1.0)
    if kind is Kind.PAN:
        return dataclasses.replace(base, pan=pan, strength=1.0)
    raise ValueError(f"kind={kind.value!r} is not a follow-up of an image; use reroll, variation, upscale, zoom or pan")
