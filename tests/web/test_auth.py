"""Signing in to the web surface: keys as Bearer, as HTTP Basic's password, or the UI's cookie; nothing else."""

from __future__ import annotations

import base64

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from bot.core import Actor, ImagineService
from tests.web.conftest import GUILD_ID, MEMBER_ID, bearer
from web.auth import COOKIE, CSRF_HEADER, current_actor

probe = APIRouter()


@probe.api_route("/probe", methods=["GET", "POST"])
async def who(actor: Actor = Depends(current_actor)) -> dict[str, object]:  # noqa: B008
    return {"user_id": actor.user_id, "guild_id": actor.guild_id, "source": actor.origin.source}


@pytest.fixture
async def probing(app: FastAPI) -> httpx.AsyncClient:
    app.include_router(probe)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_a_bearer_key_acts_as_its_member(probing: httpx.AsyncClient, member_key: str) -> None:
    """The key's member, with the server whose rules apply, through the web."""
    response = await probing.get("/probe", headers=bearer(member_key))
    assert response.status_code == 200
    assert response.json() == {"user_id": MEMBER_ID, "guild_id": GUILD_ID, "source": "web"}


async def test_basic_auth_takes_the_key_as_password(probing: httpx.AsyncClient, member_key: str) -> None:
    """A1111 clients (--api-auth) send user:password; the user name is ignored."""
    response = await probing.get("/probe", headers=basic("anyone", member_key))
    assert response.json()["user_id"] == MEMBER_ID


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer ib_000000000000_" + "A" * 43},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Token abc"},
    ],
)
async def test_no_valid_key_is_401_json_with_a_challenge(probing: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Missing, malformed or unknown keys: 401, a JSON error, and the schemes to use."""
    response = await probing.get("/probe", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert "Bearer" in response.headers["www-authenticate"]


async def test_a_revoked_key_stops_at_once(
    probing: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """Revoking drops the cached identity: the very next request is refused."""
    assert (await probing.get("/probe", headers=bearer(member_key))).status_code == 200
    await service.keys.revoke(member_key.split("_")[1], by="console")
    assert (await probing.get("/probe", headers=bearer(member_key))).status_code == 401


async def test_the_cookie_signs_in_reads_but_a_change_needs_the_request_header(
    probing: httpx.AsyncClient, member_key: str
) -> None:
    """A cross-site form post carries the cookie but cannot add the header: it gets 401."""
    probing.cookies.set(COOKIE, member_key)
    assert (await probing.get("/probe")).status_code == 200
    assert (await probing.post("/probe")).status_code == 401
    assert (await probing.post("/probe", headers={CSRF_HEADER: "1"})).status_code == 200


async def test_keys_are_stored_hashed(service: ImagineService, member_key: str) -> None:
    """The database never holds the secret."""
    rows = await service.store.fetch_all("SELECT * FROM api_keys")
    assert rows and all(member_key.encode() not in bytes(str(tuple(row)), "utf-8") for row in rows)
    assert all(member_key not in str(value) for row in rows for value in tuple(row))
