"""Checking images members upload (for img2img and inpaint) and choosing the compact bytes to store.

A hostile member can send anything with a ``.png`` name. :func:`check_upload` opens only the formats the bot
accepts, reads the header first (size, shape, frames) and refuses a decompression bomb, a sliver or an animation
before it decodes anything; whatever a crafted file makes Pillow raise becomes an :class:`UploadError` whose one
line says what to upload instead.

What passes is stored compactly under ``data/uploads/<content hash>.<ext>``:

- a plain JPEG, PNG or WebP that the engine reads as it is (RGB or grayscale, no transparency, no EXIF rotation,
  one frame) keeps its original bytes, because ``Image.open(path).convert("RGB"/"L")`` in the engine gives exactly
  the pixels the normalisation would;
- anything else is normalised (rotated upright, RGB with transparency flattened on white, or L for masks) and
  stored lossless: pictures as lossless WebP (smaller than PNG and faster to write), masks as PNG.

:mod:`bot.requests.upload_store` stages, commits and expires the stored files.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from bot.errors import ImagineError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
"""Formats Image.open may even try: every other plugin's parser stays out of reach of an upload."""
KEPT_FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp"}
"""Formats whose original bytes are kept when the pixels need no normalisation (MPO: a phone's multi-picture
JPEG, whose first picture is the photo and what ``Image.open`` shows first)."""
MIN_SIDE = 32
"""The smallest width or height accepted: below it there is nothing for img2img or a mask to work from."""
MAX_ASPECT = 4.0
"""The most elongated shape accepted, 4:1 either way (the range ``--ar`` allows)."""
WEBP_LOSSLESS = {"lossless": True, "method": 1, "quality": 0}
"""Lossless WebP at low effort. On a 4096×3072 decoded JPEG photo: 10.3 MiB in 2.3 s of one core, where PNG at
level 6 gives 14.3 MiB in 5.4 s (level 3: 15.6 MiB, 1.4 s); on a flat graphic 0.5 MiB against 1.3 MiB."""
PNG_MASK_LEVEL = 6

DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # truncated data, broken streams, "could not create decoder object"
    SyntaxError,  # malformed headers and chunks
    ValueError,  # text-chunk and ICC bombs ("Decompressed data too large"), tiles outside the image
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    zlib.error,
    MemoryError,
)
"""What Pillow's PNG, JPEG, WebP, GIF and BMP readers raise on crafted files; anything else is caught too."""

_METADATA_BOMB = re.compile(r"Decompressed data too large|Too much memory used in text chunks", re.IGNORECASE)
_DECODE_SLOTS = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))
"""Decodes at once (one per CPU, at most 4): a 16-megapixel upload takes a few hundred MiB while it is decoded and
re-encoded, so many large uploads at once wait here instead of exhausting memory."""


class UploadError(ImagineError):
    """The attachment cannot be used; the message says what to upload instead."""


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may be; servers set bytes and pixels, the shape limits are the bot's."""

    max_bytes: int = 10 * MIB
    max_pixels: int = 4096 * 4096
    max_side: int = 8192
    min_side: int = MIN_SIDE
    max_aspect: float = MAX_ASPECT


@dataclass(frozen=True)
class CheckedImage:
    """An upload that passed: the bytes to store, their extension, the upright size, the mode the engine reads
    (RGB, or L for a mask), a content hash, and whether the bytes are the member's original file."""

    data: bytes
    extension: str
    width: int
    height: int
    mode: str
    sha256: str
    kept_original: bool

    @property
    def name(self) -> str:
        """The stored file name: derived from the content only."""
        return f"{self.sha256[:32]}{self.extension}"


# --- checking ---------------------------------------------------------------------------------------------------


def check_upload(data: bytes, *, limits: UploadLimits = UploadLimits(), mask: bool = False) -> CheckedImage:
    """Validate an uploaded image and choose the bytes to store. Raises UploadError (and nothing else) with a
    one-line message a member can act on. CPU-bound: run it in a thread from async code."""
    check_byte_size(len(data), limits)
    with _DECODE_SLOTS:
        try:
            image = _open(data)
        except Exception as error:  # a crafted header may make a parser raise anything
            message = "the attachment is not an image this bot can read; upload a PNG, JPEG or WebP"
            raise _refusal(error, message, limits) from None
        try:
            with image:
                _check_header(image, limits)
                return _decode_and_choose(image, data, mask=mask)
        except UploadError:
            raise
        except Exception as error:  # a crafted body may make a decoder raise anything
            message = "the image file is damaged or truncated; export it again as PNG or JPEG and upload that"
            raise _refusal(error, message, limits) from None


def check_byte_size(size: int, limits: UploadLimits, *, what: str = "attachment") -> None:
    """Refuse an empty or too large file by its size alone (before downloading or reading it)."""
    if size <= 0:
        raise UploadError(f"the {what} is empty (0 bytes); upload a PNG, JPEG or WebP image")
    if size > limits.max_bytes:
        raise UploadError(
            f"the {what} is {_amount(size, '.1f')}; the limit is {_amount(limits.max_bytes, 'g')}. "
            "Upload a smaller image"
        )


def _amount(size: int, spec: str) -> str:
    """Bytes in MiB, or in KiB below one MiB."""
    return f"{size / MIB:{spec}} MiB" if size >= MIB else f"{size / 1024:{spec}} KiB"


def _open(data: bytes) -> Image.Image:
    """Parse the header of an accepted format (no other plugin gets to look at the bytes)."""
    return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)


def _check_header(image: Image.Image, limits: UploadLimits) -> None:
    """Refuse by what the header says, before any pixel is decoded."""
    width, height = image.size
    if width < 1 or height < 1:
        raise UploadError(f"the image is {width}x{height} and has no pixels; upload a PNG, JPEG or WebP image")
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise UploadError(
            f"the image is {width}x{height}; the limit is {limits.max_side} pixels a side and "
            f"{limits.max_pixels:,} pixels in all. Downscale it and upload again"
        )
    if min(width, height) < limits.min_side:
        raise UploadError(
            f"the image is {width}x{height}; each side must be at least {limits.min_side} pixels. Upload a larger image"
        )
    if max(width, height) > limits.max_aspect * min(width, height):
        raise UploadError(
            f"the image is {width}x{height}, longer than {limits.max_aspect:g}:1; crop it to between "
            f"1:{limits.max_aspect:g} and {limits.max_aspect:g}:1 (the range --ar allows) and upload again"
        )
    if image.format != "MPO" and (getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1):
        raise UploadError("animated images are not supported; upload a single still frame")


def _decode_and_choose(image: Image.Image, original: bytes, *, mask: bool) -> CheckedImage:
    """Decode every pixel; keep the original bytes when the engine reads them as they are, else normalise."""
    image.load()
    orientation = exif_orientation(image)
    target = "L" if mask else "RGB"
    if (
        image.format in KEPT_FORMATS
        and image.mode in {"RGB", "L"}
        and "transparency" not in image.info
        and orientation not in _TRANSPOSE
    ):
        return _checked(original, KEPT_FORMATS[image.format], image.size, target, kept_original=True)
    upright = image.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else image
    normalised = normalise(upright, mask=mask)
    normalised.info = {}  # no metadata travels into the stored copy
    buffer = io.BytesIO()
    if mask:
        normalised.save(buffer, "PNG", compress_level=PNG_MASK_LEVEL)
        extension = ".png"
    else:
        normalised.save(buffer, "WEBP", **WEBP_LOSSLESS)
        extension = ".webp"
    return _checked(buffer.getvalue(), extension, normalised.size, normalised.mode, kept_original=False)


def _checked(data: bytes, extension: str, size: tuple[int, int], mode: str, *, kept_original: bool) -> CheckedImage:
    return CheckedImage(
        data=data,
        extension=extension,
        width=size[0],
        height=size[1],
        mode=mode,
        sha256=hashlib.sha256(data).hexdigest(),
        kept_original=kept_original,
    )


def _too_many_pixels(limits: UploadLimits) -> UploadError:
    return UploadError(
        f"the image has far too many pixels to open safely; the limit is {limits.max_pixels:,} pixels. "
        "Downscale it and upload again"
    )


def _refusal(error: Exception, message: str, limits: UploadLimits) -> UploadError:
    """The member-facing error for a failure inside Pillow (the original is logged, never shown)."""
    if isinstance(error, UploadError):
        return error
    if isinstance(error, Image.DecompressionBombError):
        return _too_many_pixels(limits)
    if isinstance(error, ValueError) and _METADATA_BOMB.search(str(error)):
        return UploadError(
            "the image carries oversized compressed metadata (text or a colour profile); "
            "export it again as PNG or JPEG without metadata and upload that"
        )
    if isinstance(error, MemoryError):
        return UploadError("the image is too large to decode here; downscale it and upload again")
    if isinstance(error, (UnidentifiedImageError, *DECODER_ERRORS)):
        log.debug("upload refused: %s: %s", type(error).__name__, error)
    else:
        log.warning(
            "upload refused after an unexpected %s from the image decoder", type(error).__name__, exc_info=error
        )
    return UploadError(message)


def normalise(image: Image.Image, *, mask: bool) -> Image.Image:
    """RGB for pictures (transparency flattened onto white), L for masks (a transparent-background mask uses its
    alpha: painted pixels repaint); 16-bit, CMYK, 1-bit and palette images are converted."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        image = image.point(lambda value: value / 256).convert("L")
    if image.mode in {"P", "PA"} or "transparency" in image.info:
        image = image.convert("RGBA")
    if mask:
        if image.mode in {"RGBA", "LA"}:
            alpha = image.getchannel("A")
            return alpha if alpha.getextrema() != (255, 255) else image.convert("L")
        return image.convert("L")
    if image.mode in {"RGBA", "LA"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


# --- EXIF orientation -------------------------------------------------------------------------------------------

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_orientation(image: Image.Image) -> int:
    """The orientation (1 = upright … 8) the image's EXIF or XMP asks for, read as ``ImageOps.exif_transpose``
    reads it; metadata that Pillow cannot parse, or a value outside 1–8, means upright."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a crafted EXIF block must not refuse an image whose pixels are fine
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


# --- reading a local file (the CLI's --image/--mask) ------------------------------------------------------------


def read_upload_file(path: Path, limits: UploadLimits = UploadLimits()) -> bytes:
    """The bytes of a local image, refused by ``stat`` before reading when too large or not a regular file, and
    never more than ``max_bytes + 1`` bytes read (a file that grows meanwhile, or a device, is still refused)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UploadError("the file does not exist; give the path of a PNG, JPEG or WebP image") from None
    except OSError as error:
        raise UploadError(f"the file cannot be read ({error.strerror}); give the path of a readable image") from None
    if not stat.S_ISREG(info.st_mode):
        raise UploadError("it is not a regular file (a folder, device or pipe); give the path of an image file")
    check_byte_size(info.st_size, limits, what="file")
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as error:
        raise UploadError(f"the file cannot be read ({error.strerror}); give the path of a readable image") from None
    check_byte_size(len(data), limits, what="file")
    return data
