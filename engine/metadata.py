"""A1111-style image metadata: the ``parameters`` PNG text chunk that image tools already read."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, PngImagePlugin

PARAMETERS_KEY = "parameters"


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


def format_parameters(params: ImageParameters) -> str:
    """The text A1111 writes: prompt, ``Negative prompt: …``, then the settings line."""
    lines = [params.prompt]
    if params.negative_prompt:
        lines.append(f"Negative prompt: {params.negative_prompt}")
    lines.append(
        f"Steps: {params.steps}, Sampler: {params.sampler}, CFG scale: {params.cfg:g}, Seed: {params.seed}, "
        f"Size: {params.width}x{params.height}, Model: {params.model}"
    )
    return "\n".join(lines)


def png_bytes(image: Image.Image, params: ImageParameters) -> bytes:
    """Encode ``image`` as PNG with the parameters chunk. Deterministic: same pixels, same bytes."""
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, format_parameters(params))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, optimize=False, compress_level=6)
    return buffer.getvalue()


def read_parameters(data: bytes) -> str | None:
    """The parameters text of a PNG, or None when it has none."""
    with Image.open(io.BytesIO(data)) as image:
        value = image.info.get(PARAMETERS_KEY)
    return value if isinstance(value, str) else None
