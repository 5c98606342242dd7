"""``POST /png-info``: the generation parameters an image carries (a PNG's ``parameters`` chunk, a JPEG's or WebP's
EXIF user comment), as text and parsed as A1111 parses it (``POST /interrogate`` is :mod:`web.a1111_interrogate`).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from fastapi import APIRouter, Request
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from bot.core import UploadError, UploadLimits
from web.a1111_common import decode_a1111_image, error_responses
from web.a1111_info import parse_infotext, text_items
from web.native_common import service_of

METADATA_FORMATS = ("PNG", "JPEG", "WEBP")
"""The formats ``png-info`` reads metadata from."""
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286


class PngInfoRequest(BaseModel):
    image: str = Field(description="the image as base64 or a data: URI")


class PngInfoResponse(BaseModel):
    info: str = Field(description="the parameters text ('' when the image has none)")
    items: dict[str, Any] = Field(description="the image's other text entries")
    parameters: dict[str, Any] = Field(description="the parameters text parsed, as A1111 parses it")


router = APIRouter()


def read_metadata(data: bytes, limits: UploadLimits) -> tuple[str, dict[str, str]]:
    """The parameters text of an image (a PNG's text chunk, a JPEG's or WebP's EXIF user comment) and its other
    text entries. Only headers and metadata are read: pixels are decoded only for a PNG whose text follows its
    image data, and only within the upload pixel limit. Raises UploadError."""
    try:
        with Image.open(io.BytesIO(data), formats=METADATA_FORMATS) as image:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise UploadError(
                    f"the image is {width}x{height}, more pixels than this server reads ({limits.max_pixels:,})"
                )
            info = dict(image.info)
            if image.format == "PNG" and "parameters" not in info:
                image.load()  # text chunks after the image data are read with it
                info = dict(image.info)
            exif = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    except UploadError:
        raise
    except Image.DecompressionBombError:
        raise UploadError(
            f"the image declares more pixels than this server reads ({limits.max_pixels:,}); send a smaller image"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise UploadError(f"the image could not be read ({error}); send a PNG, JPEG or WebP image") from None
    text = info.get("parameters")
    if not isinstance(text, str) and isinstance(exif, bytes):
        text = _user_comment(exif)
    return (text if isinstance(text, str) else ""), text_items(info)


def _user_comment(comment: bytes) -> str | None:
    """An EXIF user comment's text (UNICODE is UTF-16 big-endian, as A1111 writes it; ASCII as is)."""
    if comment.startswith(b"UNICODE\x00"):
        return comment[8:].decode("utf-16-be", errors="replace")
    if comment.startswith(b"ASCII\x00\x00\x00"):
        return comment[8:].decode("ascii", errors="replace")
    return None


@router.post("/png-info", response_model=PngInfoResponse, responses=error_responses(422))
async def png_info(request: Request, body: PngInfoRequest) -> PngInfoResponse:
    """The generation parameters an image carries, as text and parsed."""
    limits = service_of(request).upload_limits
    data = await asyncio.to_thread(decode_a1111_image, body.image, limits, "image")
    text, items = await asyncio.to_thread(read_metadata, data, limits)
    return PngInfoResponse(info=text, items=items, parameters=parse_infotext(text))
