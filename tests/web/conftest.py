"""The web surface under test: the real FastAPI app over a real service (SQLite file, the session's tiny-model
engine process), driven by httpx through ASGI. Keys are made the way the owner makes them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, async_playwright

from bot.core import ImagineService
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from web.app import create_app

MEMBER_ID = 4242
OTHER_ID = 4343
MODERATOR_ID = 4444
GUILD_ID = 77
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web-ui"
"""Where the browser tests' screenshots land."""


@pytest.fixture
async def service(settings: Settings, engine: EngineSupervisor) -> AsyncIterator[ImagineService]:
    """The application core on this test's database and the session's engine, its worker running."""
    service = await ImagineService.open(settings, engine=engine)
    service.start()
    try:
        yield service
    finally:
        await service.close()


@pytest.fixture
def app(service: ImagineService, settings: Settings) -> FastAPI:
    return create_app(service, settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=120) as client:
        yield client


async def issue_key(service: ImagineService, user_id: int, *, moderator: bool = False, guild_id: int = GUILD_ID) -> str:
    """A key the owner made for ``user_id`` (as ``python -m bot apikey create`` does)."""
    issued = await service.keys.issue(user_id, guild_id=guild_id, created_by="console", moderator=moderator)
    return issued.secret


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def member_key(service: ImagineService) -> str:
    return await issue_key(service, MEMBER_ID)


@pytest.fixture
async def other_key(service: ImagineService) -> str:
    return await issue_key(service, OTHER_ID)


@pytest.fixture
async def moderator_key(service: ImagineService) -> str:
    return await issue_key(service, MODERATOR_ID, moderator=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    """The app served by uvicorn on a free local port, in this test's event loop."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # start-up failed: raise its error
    assert server.started, "uvicorn did not start in 5 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium from the system (tests run as root, hence no sandbox)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: install it with `apt-get install chromium` "
            "(the browser tests use the system's Chromium and never download one)"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()
