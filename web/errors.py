"""Every web error is JSON: ``{"error": {"code": "<machine code>", "message": "<what to change>"}}``.

The message of a refusal from the core is the very text Discord shows; the code lets a program tell refusals apart.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.core import (
    ApiKeyError,
    BannedError,
    BlockedPromptError,
    DuplicateJobError,
    ImagineError,
    InsufficientCreditsError,
    JobNotFoundError,
    LaneNotAllowedError,
    NotModeratorError,
    PromptError,
    QueueLimitError,
    QueuePausedError,
    ServerOnlyError,
    UploadError,
)

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[ImagineError], int], ...] = (
    (JobNotFoundError, 404),
    (InsufficientCreditsError, 402),
    (BannedError, 403),
    (NotModeratorError, 403),
    (ServerOnlyError, 403),
    (LaneNotAllowedError, 403),
    (QueueLimitError, 429),
    (DuplicateJobError, 409),
    (QueuePausedError, 503),
    (BlockedPromptError, 422),
    (PromptError, 422),
    (UploadError, 422),
    (ApiKeyError, 400),
)
"""The HTTP status of each refusal; any other ImagineError is a 400."""
_CODES: dict[type[ImagineError], str] = {PromptError: "bad_prompt", UploadError: "bad_upload"}
"""Codes that are not the refusal's class name (snake case, without "Error")."""


class ApiError(Exception):
    """An error a route answers with: its status, machine code and human message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def snake_case(name: str) -> str:
    """``InsufficientCreditsError`` → ``insufficient_credits``."""
    words = re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error")).lower()
    return words or "error"


def error_status_and_code(error: ImagineError) -> tuple[int, str]:
    """The HTTP status and machine code of a refusal from the core."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status, _CODES.get(kind) or snake_case(type(error).__name__)
    return 400, snake_case(type(error).__name__) if type(error) is not ImagineError else "refused"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def api_error_from(error: ImagineError) -> ApiError:
    status, code = error_status_and_code(error)
    return ApiError(status, code, str(error))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON (also FastAPI's own: validation, unknown routes, wrong methods)."""

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(error.code, error.message), status_code=error.status, headers=error.headers)

    @app.exception_handler(ImagineError)
    async def on_refusal(request: Request, error: ImagineError) -> JSONResponse:
        status, code = error_status_and_code(error)
        return JSONResponse(error_body(code, str(error)), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in item.get('loc', ()) if part != 'body')}: {item.get('msg', '')}"
            for item in error.errors()
        ]
        message = "the request is not valid: " + "; ".join(problems)
        return JSONResponse(error_body("invalid_request", message[:2000]), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
        code = codes.get(error.status_code, f"http_{error.status_code}")
        return JSONResponse(
            error_body(code, str(error.detail)), status_code=error.status_code, headers=dict(error.headers or {})
        )

    @app.exception_handler(Exception)
    async def on_bug(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "something went wrong on the server; the owner can see it in the log"),
            status_code=500,
        )
