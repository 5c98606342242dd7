"""Checking images members upload (for img2img and inpaint) before anything is stored or rendered.

A hostile member can send anything with a ``.png`` name: the checks read the header first (size, format,
frames) and only then decode, so a decompression bomb is refused before it costs memory. What passes is
re-encoded as a plain RGB (or L for masks) PNG under ``data/uploads`` with a name derived from its content:
the member's file name never reaches the file system.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.errors import ImagineError

ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP", "GIF"})
MIB = 1024 * 1024


class UploadError(ImagineError):
    """The attachment cannot be used; the message says what to upload instead."""


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 10 * MIB
    max_pixels: int = 4096 * 4096
    max_side: int = 8192


@dataclass(frozen=True)
class CheckedImage:
    """An upload that passed: its normalised PNG bytes, size and a content hash."""

    png: bytes
    width: int
    height: int
    mode: str
    sha256: str


def check_upload(data: bytes, *, limits: UploadLimits = UploadLimits(), mask: bool = False) -> CheckedImage:
    """Validate and normalise an uploaded image. Raises UploadError with a message a member can act on."""
    if not data:
        raise UploadError("the attachment is empty (0 bytes); upload a PNG, JPEG or WebP image")
    if len(data) > limits.max_bytes:
        raise UploadError(
            f"the attachment is {len(data) / MIB:.1f} MiB; the limit is {limits.max_bytes / MIB:g} MiB. "
            "Upload a smaller image"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(
            f"the image has far too many pixels to open safely; the limit is {limits.max_pixels:,} pixels. "
            "Downscale it and upload again"
        ) from None
    except (UnidentifiedImageError, OSError):
        raise UploadError("the attachment is not an image this bot can read; upload a PNG, JPEG or WebP") from None
    with image:
        if image.format not in ACCEPTED_FORMATS:
            raise UploadError(f"{image.format} images are not supported; upload a PNG, JPEG or WebP")
        width, height = image.size
        if width < 1 or height < 1:
            raise UploadError("the image has no pixels")
        if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
            raise UploadError(
                f"the image is {width}x{height}; the limit is {limits.max_side} pixels a side and "
                f"{limits.max_pixels:,} pixels in all. Downscale it and upload again"
            )
        if getattr(image, "n_frames", 1) > 1:
            raise UploadError("animated images are not supported; upload a single still frame")
        try:
            image.load()
            image = ImageOps.exif_transpose(image) or image
            normalised = _normalise(image, mask=mask)
        except (OSError, ValueError, SyntaxError):
            raise UploadError("the image file is damaged or truncated; export it again and upload") from None
    buffer = io.BytesIO()
    normalised.save(buffer, format="PNG")
    png = buffer.getvalue()
    return CheckedImage(
        png=png,
        width=normalised.width,
        height=normalised.height,
        mode=normalised.mode,
        sha256=hashlib.sha256(png).hexdigest(),
    )


def _normalise(image: Image.Image, *, mask: bool) -> Image.Image:
    """RGB for pictures (transparency flattened onto white), L for masks; 16-bit, CMYK and palettes converted."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        image = image.point(lambda value: value / 256).convert("L")
    if image.mode in {"P", "PA"}:
        image = image.convert("RGBA")
    if mask:
        if image.mode in {"RGBA", "LA"}:
            # A transparent-background mask: painted (opaque) pixels repaint.
            alpha = image.getchannel("A")
            return alpha if alpha.getextrema() != (255, 255) else image.convert("L")
        return image.convert("L")
    if image.mode in {"RGBA", "LA"}:
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def store_upload(checked: CheckedImage, uploads_dir: Path) -> Path:
    """Write a checked image under ``uploads_dir`` by content hash (idempotent) and return its path."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    path = uploads_dir / f"{checked.sha256[:32]}.png"
    if not path.exists():
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(checked.png)
        temporary.replace(path)
    return path
