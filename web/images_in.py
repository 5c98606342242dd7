"""Images sent inside JSON: plain base64 or a ``data:`` URI, refused by their size before they are decoded.

The size a base64 text decodes to follows from its length, so a too-large image is refused without decoding a byte
(the same check, with the same message, that a Discord attachment's announced size gets). What decodes is checked
for pixels, bombs and format by :meth:`bot.core.ImagineService.receive_image`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Iterable

from bot.core import UploadError, UploadLimits, check_byte_size

DATA_URI = re.compile(r"^data:(?P<media>[^,;]*)(?P<parameters>(?:;[^,;]*)*),", re.IGNORECASE)


def base64_payload(text: str, what: str) -> str:
    """The base64 text of plain base64 or a ``data:<type>;base64,`` URI, without whitespace (line breaks)."""
    match = DATA_URI.match(text[:200])
    if match is not None:
        if ";base64" not in match.group("parameters").lower():
            raise UploadError(f"the {what} data URI is not base64; send data:image/png;base64,… or plain base64")
        text = text[match.end() :]
    payload = "".join(text.split())
    return payload + "=" * (-len(payload) % 4) if payload.rstrip("=") else payload


def decoded_size(payload: str) -> int:
    """The bytes a padded base64 text decodes to (from its length alone)."""
    return len(payload) // 4 * 3 - (len(payload) - len(payload.rstrip("=")))


def decode_image(text: str, limits: UploadLimits, what: str = "image") -> bytes:
    """The bytes of an image sent as base64 or a data URI. Raises UploadError for an empty, too large (checked
    before decoding) or malformed text. CPU-bound for large images: run it in a thread from async code."""
    payload = base64_payload(text, what)
    check_byte_size(decoded_size(payload), limits, what=what)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(
            f"the {what} is not valid base64; send the file's bytes as base64 or as a data:image/png;base64,… URI"
        ) from None
    check_byte_size(len(data), limits, what=what)
    return data


def check_sizes(sent: Iterable[tuple[str, str]], limits: UploadLimits) -> None:
    """Refuses the first too-large image of ``sent`` (its text and what it is) by its length, before any decodes.
    Raises UploadError."""
    for text, what in sent:
        check_byte_size(decoded_size(base64_payload(text, what)), limits, what=what)


async def decode_in_thread(text: str, limits: UploadLimits, what: str = "image") -> bytes:
    """:func:`decode_image` off the event loop (large images take a while to decode)."""
    return await asyncio.to_thread(decode_image, text, limits, what)
