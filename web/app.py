"""The web application: one FastAPI app over the application core, served in the bot's own event loop.

:func:`create_app` wires the routers (the native API, the A1111-compatible API, the web UI, ``/metrics``) to one
:class:`~bot.core.ImagineService`; the app never opens a second scheduler, worker or engine.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bot.core import ImagineService
from config.settings import Settings
from web import a1111_api, metrics_route, native_api, pages
from web.body_limit import BodyLimit
from web.errors import install_error_handlers
from web.feed import JobFeed

log = logging.getLogger(__name__)

API_DESCRIPTION = """\
imaginebot's HTTP APIs. Sign in with an API key (`/apikey` in Discord, or `python -m bot apikey create`) as
`Authorization: Bearer <key>` or as the password of HTTP Basic auth. A key acts as its member: the same credits,
lanes, limits, bans and moderation as in Discord. Every error is JSON: `{"error": {"code", "message"}}`.

- `/api/v1`: the native API (jobs, their events as Server-Sent Events, images, follow-ups, account, moderation).
- `/sdapi/v1`: the AUTOMATIC1111-compatible API (txt2img, img2img, options, progress, png-info, ...).
"""


def create_app(service: ImagineService, settings: Settings) -> FastAPI:
    """The web app over ``service`` (opened and started by the caller, who also closes it)."""
    feed = JobFeed()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        feed.close()

    app = FastAPI(
        title="imaginebot",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.service = service
    app.state.settings = settings
    app.state.feed = feed
    feed.attach(service.events.subscribe)
    install_error_handlers(app)
    app.include_router(native_api.router, prefix="/api/v1")
    app.include_router(a1111_api.router, prefix="/sdapi/v1")
    app.include_router(a1111_api.internal_router)
    app.include_router(metrics_route.router)
    app.include_router(pages.router)
    app.add_middleware(BodyLimit, max_bytes=settings.web.max_body_bytes)
    return app
