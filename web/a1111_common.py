"""What the A1111-compatible routes share: who is asking, the error shapes they document, the jobs each member's
requests wait for, and how an image sent inside JSON is decoded."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from bot.core import Actor, UploadError, UploadLimits
from web import images_in
from web.a1111_requests import A1111RequestError
from web.auth import current_actor
from web.errors import ApiError

ActorDep = Annotated[Actor, Depends(current_actor)]
"""A route parameter: the member of the request's key."""


class ErrorDetail(BaseModel):
    code: str = Field(description="machine code, e.g. insufficient_credits, unknown_sampler, bad_prompt")
    message: str = Field(description="what to change, the same text Discord shows")


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of a route, each with :class:`ErrorBody`."""
    return {status: {"model": ErrorBody} for status in statuses}


COMMON_ERRORS = error_responses(401, 413, 422)
"""What every A1111 route may answer."""
GENERATION_ERRORS = error_responses(402, 403, 409, 429, 500, 503)
"""What ``txt2img``/``img2img`` may answer besides :data:`COMMON_ERRORS`."""


def waiting_jobs(request: Request) -> dict[int, set[int]]:
    """The jobs of each member's A1111 requests that wait for their results now (what ``/interrupt`` stops)."""
    waiting: dict[int, set[int]] | None = getattr(request.app.state, "a1111_waiting", None)
    if waiting is None:
        waiting = {}
        request.app.state.a1111_waiting = waiting
    return waiting


def refusal(error: A1111RequestError) -> ApiError:
    """A request field this server cannot honour, as the 422 the client gets."""
    return ApiError(422, error.code, error.message)


def decode_a1111_image(text: str, limits: UploadLimits, what: str) -> bytes:
    """An image sent as base64 or a ``data:`` URI (surrounding whitespace ignored), refused by its size before it
    is decoded (:func:`web.images_in.decode_image`); a URL is refused, never fetched. Raises UploadError."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        raise UploadError(f"the {what} is a URL; this server does not fetch URLs: send the image itself as base64")
    return images_in.decode_image(text, limits, what)
