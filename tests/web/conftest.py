"""The web surface under test: the real FastAPI app over a real service (SQLite file, the session's tiny-model
engine process), driven by httpx through ASGI. Keys are made the way the owner makes them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from bot.core import ImagineService
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from web.app import create_app

MEMBER_ID = 4242
OTHER_ID = 4343
MODERATOR_ID = 4444
GUILD_ID = 77


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
