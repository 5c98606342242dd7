"""The native API's account routes and sign-in: /me, preferences, models, samplers, the queue, the web UI's
cookie, and a key that is missing, wrong or revoked on every route."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from bot.core import ImagineService
from tests.web.conftest import MEMBER_ID, bearer
from tests.web.native import API
from web.auth import COOKIE, CSRF_HEADER

ROUTES: list[tuple[str, str, dict[str, object] | None]] = [
    ("POST", "/jobs", {"prompt": "a cat"}),
    ("GET", "/jobs", None),
    ("GET", "/jobs/1", None),
    ("DELETE", "/jobs/1", None),
    ("POST", "/jobs/1/actions", {"action": "reroll"}),
    ("GET", "/jobs/1/images/0", None),
    ("GET", "/jobs/1/grid", None),
    ("GET", "/jobs/1/events", None),
    ("GET", "/me", None),
    ("PATCH", "/me/preferences", {"steps": 10}),
    ("GET", "/models", None),
    ("GET", "/samplers", None),
    ("GET", "/queue", None),
    ("GET", "/admin/queue", None),
    ("POST", "/admin/jobs/1/cancel", None),
    ("POST", "/admin/credits", {"user_id": 1, "change": "give", "amount": 5, "reason": "x"}),
    ("POST", "/admin/tier", {"user_id": 1, "tier": "supporter"}),
    ("POST", "/admin/ban", {"user_id": 1, "reason": "x"}),
    ("POST", "/admin/unban", {"user_id": 1, "reason": "x"}),
    ("GET", "/admin/blocklist", None),
    ("POST", "/admin/blocklist", {"words": ["x"]}),
    ("DELETE", "/admin/blocklist?word=x", None),
    ("POST", "/admin/pause", None),
    ("POST", "/admin/resume", None),
    ("GET", "/admin/stats", None),
    ("GET", "/admin/accounts/1", None),
]
"""Every route that needs a key, with a body it would accept."""
ADMIN_ROUTES = [route for route in ROUTES if route[1].startswith("/admin")]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_every_route_needs_a_valid_key(
    client: httpx.AsyncClient,
    service: ImagineService,
    member_key: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    """No key, a wrong key and a revoked key: 401 unauthorized with the challenge, before anything happens."""
    await service.keys.revoke(member_key.split("_")[1], by="console")
    for headers in ({}, bearer("ib_000000000000_" + "A" * 43), bearer(member_key)):
        response = await client.request(method, API + path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert "Bearer" in response.headers["www-authenticate"]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES, ids=[f"{m} {p}" for m, p, _ in ADMIN_ROUTES])
async def test_a_member_key_may_not_moderate(
    client: httpx.AsyncClient, member_key: str, method: str, path: str, body: dict[str, object] | None
) -> None:
    """403 not_moderator with the text Discord shows."""
    response = await client.request(method, API + path, json=body, headers=bearer(member_key))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "not_moderator"
    assert "only moderators" in response.json()["error"]["message"]


async def test_me_shows_the_account(client: httpx.AsyncClient, member_key: str, moderator_key: str) -> None:
    """Balance, tier, defaults, no jobs yet, and whether the key moderates."""
    me = (await client.get(f"{API}/me", headers=bearer(member_key))).json()
    assert me["user_id"] == MEMBER_ID and me["tier"] == "free" and me["balance"] > 0
    assert me["banned"] is False and me["jobs"] == [] and me["moderator"] is False
    assert me["preferences"] == {"model": None, "aspect": None, "steps": None, "sampler": None, "lane": None}
    assert (await client.get(f"{API}/me", headers=bearer(moderator_key))).json()["moderator"] is True


async def test_preferences_change_only_what_is_sent(client: httpx.AsyncClient, member_key: str) -> None:
    """PATCH as /settings: checked by the flag's rule; null goes back to the server's default."""
    url = f"{API}/me/preferences"
    changed = await client.patch(
        url, json={"steps": 12, "sampler": "euler", "lane": "relax"}, headers=bearer(member_key)
    )
    assert changed.json() == {"model": None, "aspect": None, "steps": 12, "sampler": "euler", "lane": "relax"}
    kept = await client.patch(url, json={"aspect": "3:2"}, headers=bearer(member_key))
    assert kept.json()["steps"] == 12 and kept.json()["aspect"] == "3:2"
    reset = await client.patch(url, json={"steps": None}, headers=bearer(member_key))
    assert reset.json()["steps"] is None and reset.json()["sampler"] == "euler"
    refused = await client.patch(url, json={"steps": 999}, headers=bearer(member_key))
    assert refused.status_code == 422 and "--steps 999" in refused.json()["error"]["message"]
    me = (await client.get(f"{API}/me", headers=bearer(member_key))).json()
    assert me["preferences"]["aspect"] == "3:2"


async def test_models_samplers_and_queue(client: httpx.AsyncClient, member_key: str) -> None:
    """What --model and --sampler take, and how busy the queue is."""
    models = (await client.get(f"{API}/models", headers=bearer(member_key))).json()
    assert models["default"] == "tiny" and "tiny" in models["models"]
    samplers = (await client.get(f"{API}/samplers", headers=bearer(member_key))).json()["samplers"]
    assert "euler_a" in samplers
    queue = (await client.get(f"{API}/queue", headers=bearer(member_key))).json()
    assert queue == {"paused": False, "queued": {"turbo": 0, "fast": 0, "relax": 0}, "total_queued": 0, "running": 0}


async def test_the_web_ui_signs_in_with_a_cookie(app: FastAPI, member_key: str) -> None:
    """POST /session sets an HttpOnly, SameSite=Strict cookie; it reads, changes only with the header, and
    DELETE /session clears it. A wrong key sets nothing."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as browser:
        wrong = await browser.post(f"{API}/session", json={"key": "ib_000000000000_" + "A" * 43})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        signed = await browser.post(f"{API}/session", json={"key": member_key})
        assert signed.status_code == 200 and signed.json()["user_id"] == MEMBER_ID
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Path=/" in cookie and "Secure" not in cookie
        assert (await browser.get(f"{API}/me")).status_code == 200
        body = {"steps": 10}
        assert (await browser.patch(f"{API}/me/preferences", json=body)).status_code == 401
        assert (await browser.patch(f"{API}/me/preferences", json=body, headers={CSRF_HEADER: "1"})).status_code == 200
        out = await browser.delete(f"{API}/session")
        assert out.status_code == 204 and 'imaginebot_key=""' in out.headers["set-cookie"]
        assert (await browser.get(f"{API}/me")).status_code == 401


async def test_the_cookie_is_secure_over_https(app: FastAPI, member_key: str) -> None:
    """Signed in over https, the cookie is only ever sent back over https."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as browser:
        signed = await browser.post(f"{API}/session", json={"key": member_key})
        assert "Secure" in signed.headers["set-cookie"]
