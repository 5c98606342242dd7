"""What every native API route shares: who is asking (as the OpenAPI schema documents it), the service, and the
documented error responses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from bot.core import Actor, ImagineService, Lane
from config.settings import Settings
from web.auth import current_actor
from web.feed import JobFeed
from web.schemas import CreatedOut, ErrorOut, LaneName

API_PREFIX = "/api/v1"
"""Where create_app mounts the native API (the URLs in responses are relative to the server)."""


class DocumentedBasic(HTTPBasic):
    """HTTP Basic with the key as password, as the OpenAPI schema shows it; :mod:`web.auth` reads the header."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        return None


bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="apiKey", description="an API key: /apikey in Discord or `python -m bot apikey`"
)
basic_scheme = DocumentedBasic(
    auto_error=False, scheme_name="basicKey", description="any user name, the API key as password (A1111 clients)"
)


async def signed_in(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    _basic: Annotated[HTTPBasicCredentials | None, Security(basic_scheme)],
) -> Actor:
    """The member of the request's key (see :func:`web.auth.current_actor`); 401 without a valid one."""
    return await current_actor(request)


Member = Annotated[Actor, Depends(signed_in)]
"""A route parameter: the signed-in member."""


def service_of(request: Request) -> ImagineService:
    service: ImagineService = request.app.state.service
    return service


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def feed_of(request: Request) -> JobFeed:
    feed: JobFeed = request.app.state.feed
    return feed


_MEANING = {
    400: "refused: the message says what to change",
    401: "no valid API key (unauthorized)",
    402: "not enough credits (insufficient_credits)",
    403: "banned, not a moderator, or a lane the tier may not use",
    404: "no such job or image of yours (job_not_found, image_not_found)",
    409: "the same follow-up is already on its way (duplicate_job)",
    413: "the request body is too large (body_too_large)",
    422: "the request, the prompt, a flag or an upload is not valid (invalid_request, bad_prompt, bad_upload, "
    "blocked_prompt)",
    429: "too many jobs waiting (queue_limit)",
    503: "the queue is paused (queue_paused)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of a route (always 401, 413 and 422 besides ``statuses``), each with the error model."""
    chosen = sorted({401, 413, 422, *statuses})
    return {status: {"model": ErrorOut, "description": _MEANING[status]} for status in chosen}


SUBMIT_ERRORS = errors(400, 402, 403, 404, 409, 429, 503)
"""What queueing a job may answer: the refusals of /imagine and the buttons."""
SUBMIT_ROUTE: dict[str, Any] = {"status_code": 202, "response_model": CreatedOut, "responses": SUBMIT_ERRORS}
"""The options of a route that queues jobs (``@router.post(path, summary=..., **SUBMIT_ROUTE)``)."""


def lane_of(name: LaneName | None) -> Lane | None:
    """The lane a request asked for; None for the member's default."""
    return Lane(name) if name is not None else None
