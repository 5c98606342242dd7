"""The AUTOMATIC1111-compatible API (``/sdapi/v1``): what A1111 clients (Discord bots such as AIYA, SillyTavern,
editor plugins, scripts) call, answered by imaginebot's queue.

Every route needs an API key, sent as A1111's ``--api-auth`` sends credentials (HTTP Basic: the key is the
password, the user name is ignored) or as ``Authorization: Bearer <key>``; errors are this server's JSON errors.

:data:`router` gathers the routes: generation and its blocking wait (:mod:`web.a1111_generate`), the lists and
options clients read (:mod:`web.a1111_lists`), progress, interrupt and skip (:mod:`web.a1111_status`) and png-info
(:mod:`web.a1111_png_info`). The translations are pure functions: the request models (:mod:`web.a1111_requests`),
sampler names (:mod:`web.a1111_samplers`), a request in our words (:mod:`web.a1111_mapping`) and finished jobs in
A1111's words (:mod:`web.a1111_info`).

:data:`internal_router` holds ``GET /internal/ping``, outside ``/sdapi/v1`` as in A1111: clients such as SillyTavern
call it to test a connection (with the key, so a wrong key shows at once).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from web import a1111_generate, a1111_interrogate, a1111_lists, a1111_png_info, a1111_status
from web.a1111_common import COMMON_ERRORS, error_responses
from web.auth import current_actor

TAG = "A1111-compatible API"

router = APIRouter(tags=[TAG], dependencies=[Depends(current_actor)], responses=COMMON_ERRORS)
"""Every ``/sdapi/v1`` route; create_app mounts it at that prefix."""
router.include_router(a1111_generate.router)
router.include_router(a1111_lists.router)
router.include_router(a1111_status.router)
router.include_router(a1111_png_info.router)
router.include_router(a1111_interrogate.router)


class Pong(BaseModel):
    """A1111 answers ``{}``."""


internal_router = APIRouter(
    prefix="/internal", tags=[TAG], dependencies=[Depends(current_actor)], responses=error_responses(401)
)
"""A1111's ``/internal`` routes that clients call; create_app mounts it as it is (no prefix)."""


@internal_router.get("/ping", response_model=Pong)
async def ping() -> Pong:
    """The server is up and the key is valid: ``{}``, as A1111 answers."""
    return Pong()
