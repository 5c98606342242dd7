"""The inputs of a render, checked and read: source images, sizes, strengths, and ``--tile``'s seamless
convolutions. Engine process only."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from engine.protocol import RenderTask

PIPELINE_MULTIPLE = 8
"""diffusers' Stable Diffusion pipelines refuse a width or height that is not a multiple of 8."""


@contextlib.contextmanager
def seamless(pipe: Any, *, enabled: bool) -> Iterator[None]:
    """``--tile``: circular padding in the UNet's and VAE's convolutions, so the image wraps at its edges."""
    if not enabled:
        yield
        return
    convolutions = [
        module
        for part in (getattr(pipe, "unet", None), getattr(pipe, "vae", None))
        if part is not None
        for module in part.modules()
        if isinstance(module, torch.nn.Conv2d)
    ]
    previous = [conv.padding_mode for conv in convolutions]
    for conv in convolutions:
        conv.padding_mode = "circular"
    try:
        yield
    finally:
        for conv, mode in zip(convolutions, previous, strict=True):
            conv.padding_mode = mode


def load_image(path: str, argument: str, *, mode: str = "RGB") -> Image.Image:
    """Read an input image. Raises ValueError naming the argument when it is missing or unreadable."""
    if not path:
        raise ValueError(f"{argument} is required for this kind of job; give the path of a PNG or JPEG")
    try:
        with Image.open(Path(path)) as image:
            image.load()
            return image.convert(mode)
    except FileNotFoundError:
        raise ValueError(f"{argument}={path} does not exist") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{argument}={path} is not an image this engine can read: {error}") from None


def canvas_multiple(vae_scale_factor: int) -> int:
    """What upscale and pan sizes round to: the pipelines need multiples of 8 pixels, and whole latents (8 on
    SD1.5/SDXL, 2 on the tiny test models, so 8 everywhere built in, as the bot's ``size_multiple``)."""
    return math.lcm(PIPELINE_MULTIPLE, vae_scale_factor)


def check_size(task: RenderTask) -> None:
    """Width and height must be positive multiples of 8."""
    for name, value in (("width", task.width), ("height", task.height)):
        if value <= 0 or value % 8:
            raise ValueError(f"{name}={value} must be a positive multiple of 8")


def check_strength(strength: float) -> None:
    if not 0 < strength <= 1:
        raise ValueError(f"strength={strength:g} must be above 0 and at most 1")
