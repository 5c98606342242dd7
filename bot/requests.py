"""Turn a prompt plus the image-task options of ``generate`` (image, mask, strength, model, sweeps) into a job.

Pure apart from checking that the given files exist; used by :meth:`bot.service.ImagineService.prepare_request`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import PromptError
from bot.jobs import Kind, RenderParams
from bot.sweep_spec import parse_sweeps
from bot.uploads import UploadError, UploadLimits, check_upload, store_upload


@dataclass(frozen=True)
class TaskOptions:
    """What a shell (or later a slash command's options) adds to a prompt."""

    model: str | None = None
    image: Path | None = None
    mask: Path | None = None
    strength: float | None = None
    sweeps: tuple[str, ...] = ()


def kind_for(options: TaskOptions) -> Kind:
    """Sweep if any ``--sweep``; inpaint with ``--mask``; img2img with ``--image``; else txt2img."""
    if options.sweeps:
        return Kind.SWEEP
    if options.mask is not None:
        return Kind.INPAINT
    if options.image is not None:
        return Kind.IMG2IMG
    return Kind.IMAGINE


def apply_options(params: RenderParams, options: TaskOptions) -> RenderParams:
    """``params`` with the options applied. Raises PromptError naming the option to fix."""
    if options.mask is not None and options.image is None:
        raise PromptError("--mask needs --image: the mask says which part of that image to repaint", flag="mask")
    if options.strength is not None and not 0 < options.strength <= 1:
        raise PromptError(f"--strength {options.strength:g} must be above 0 and at most 1", flag="strength")
    if options.strength is not None and options.image is None and not _sweeps_strength(options.sweeps):
        raise PromptError("--strength needs --image (it says how far to move away from that image)", flag="strength")
    changes: dict[str, object] = {}
    for flag, path in (("image", options.image), ("mask", options.mask)):
        if path is not None:
            if not path.is_file():
                raise PromptError(f"--{flag} {path} does not exist", flag=flag)
            changes["init_image" if flag == "image" else "mask_image"] = str(path.resolve())
    if options.strength is not None:
        changes["strength"] = options.strength
    elif options.mask is not None:
        changes["strength"] = 1.0
    if options.sweeps:
        try:
            changes["sweep"] = parse_sweeps(options.sweeps)
        except ValueError as error:
            raise PromptError(str(error), flag="sweep") from None
        changes["images"] = 1
    return dataclasses.replace(params, **changes)  # type: ignore[arg-type]


def _sweeps_strength(sweeps: Sequence[str]) -> bool:
    return any(spec.strip().lower().startswith("strength") for spec in sweeps)


VARIATION_STRENGTH = {"subtle": 0.35, "strong": 0.65}
UPSCALE_STRENGTH = 0.3


def follow_up_params(
    parent: RenderParams,
    kind: Kind,
    image_path: str,
    seed: int,
    *,
    variation: str = "strong",
    zoom: float = 2.0,
    pan: str = "",
) -> RenderParams:
    """Params of a job made from one image of a finished job (U, V, 🔄, zoom, pan buttons).

    Reroll renders the parent's prompt again with ``seed``; the others start from ``image_path``. Upscale gives
    one image, the others a full grid. Raises ValueError for a kind that is not a follow-up.
    """
    if kind is Kind.REROLL:
        return dataclasses.replace(parent, seed=seed)
    base = dataclasses.replace(parent, init_image=image_path, mask_image="", sweep=(), seed=seed)
    if kind is Kind.VARIATION:
        if variation not in VARIATION_STRENGTH:
            raise ValueError(f"variation={variation!r} is not one of: {', '.join(VARIATION_STRENGTH)}")
        return dataclasses.replace(base, strength=VARIATION_STRENGTH[variation])
    if kind is Kind.UPSCALE:
        return dataclasses.replace(base, strength=UPSCALE_STRENGTH, images=1, upscale_factor=2.0)
    if kind is Kind.ZOOM:
        return dataclasses.replace(base, zoom=zoom, strength=1.0)
    if kind is Kind.PAN:
        return dataclasses.replace(base, pan=pan, strength=1.0)
    raise ValueError(f"kind={kind.value!r} is not a follow-up of an image; use reroll, variation, upscale, zoom or pan")


def store_task_inputs(options: TaskOptions, limits: UploadLimits, uploads_dir: Path) -> TaskOptions:
    """Check --image/--mask like a Discord upload and copy them under data/uploads (the engine reads only data/)."""
    if options.mask is not None and options.image is None:
        return options  # apply_options explains that a mask needs an image
    stored: dict[str, Path | None] = {}
    for name in ("image", "mask"):
        path = getattr(options, name)
        if path is None:
            stored[name] = None
            continue
        if not path.is_file():
            raise PromptError(f"--{name} {path} does not exist", flag=name)
        try:
            checked = check_upload(path.read_bytes(), limits=limits, mask=name == "mask")
        except UploadError as error:
            raise PromptError(f"--{name} {path}: {error}", flag=name) from None
        stored[name] = store_upload(checked, uploads_dir)
    return dataclasses.replace(options, image=stored["image"], mask=stored["mask"])
