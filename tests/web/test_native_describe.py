"""/describe over HTTP: the native API's ``/api/v1/describe`` (ask, read, run a suggestion as /imagine) and A1111's
``/sdapi/v1/interrogate``, over the real service and the session's engine with a tiny random BLIP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core import ImagineService
from config.settings import Settings
from tests.conftest import make_settings
from tests.web.conftest import GUILD_ID, bearer
from tests.web.native import API, balance, data_uri, png_bytes, wait_for_job
from web.app import create_app


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """The tiny models, and the tiny BLIP for /describe."""
    return make_settings(data_dir, database_path=tmp_path / "imagine.db", describe={"source": "tiny:blip"})


async def describe(client: httpx.AsyncClient, key: str, image: str | None = None) -> httpx.Response:
    body = {"image": image if image is not None else data_uri(png_bytes(128, 64))}
    return await client.post(f"{API}/describe", json=body, headers=bearer(key))


async def described(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    """A describe job asked for and finished; its description."""
    response = await describe(client, key)
    assert response.status_code == 202, response.text
    [job] = response.json()["jobs"]
    assert (await wait_for_job(client, key, job["id"]))["status"] == "completed"
    answer = await client.get(f"{API}/describe/{job['id']}", headers=bearer(key))
    assert answer.status_code == 200, answer.text
    description: dict[str, Any] = answer.json()
    return description


@pytest.mark.slow
async def test_describe_then_run_a_suggestion_as_imagine(client: httpx.AsyncClient, member_key: str) -> None:
    """202 with its cost; four suggestions ending with the image's --ar; running one queues /imagine of it, charged
    as /imagine."""
    before = await balance(client, member_key)
    response = await describe(client, member_key)
    assert response.status_code == 202, response.text
    created = response.json()
    [job] = created["jobs"]
    assert (job["kind"], job["prompt"], created["cost"]) == ("describe", "describe this image", 1)
    assert created["balance"] == before - 1
    done = await wait_for_job(client, member_key, job["id"])
    assert done["status"] == "completed" and done["actions"] == []
    assert done["grid_url"] and len(done["images"]) == 1
    description = (await client.get(f"{API}/describe/{job['id']}", headers=bearer(member_key))).json()
    suggestions = description["suggestions"]
    assert [item["index"] for item in suggestions] == [0, 1, 2, 3]
    assert all(item["offered"] and item["prompt"].endswith(" --ar 2:1") for item in suggestions)
    assert len({item["prompt"] for item in suggestions}) == 4

    ran = await client.post(f"{API}/describe/{job['id']}/suggestions/3/imagine", headers=bearer(member_key))
    assert ran.status_code == 202, ran.text
    [imagine] = ran.json()["jobs"]
    assert (imagine["kind"], imagine["prompt"], imagine["parent_id"]) == (
        "imagine",
        suggestions[3]["prompt"],
        job["id"],
    )
    assert ran.json()["cost"] == 1 and await balance(client, member_key) == before - 2
    assert (await wait_for_job(client, member_key, imagine["id"]))["status"] == "completed"


@pytest.mark.slow
async def test_blocked_suggestions_are_hidden_and_refused_and_others_see_nothing(
    client: httpx.AsyncClient, service: ImagineService, member_key: str, other_key: str
) -> None:
    """A suggestion with a word of the key's server's blocklist: prompt null, not offered, and running it is 422
    blocked_prompt with no charge; another member's describe job is 404."""
    description = await described(client, member_key)
    job_id = description["job"]["id"]
    word = description["suggestions"][0]["prompt"].split()[0]
    await service.moderation.block(GUILD_ID, [word], actor_id=1)
    hidden = (await client.get(f"{API}/describe/{job_id}", headers=bearer(member_key))).json()["suggestions"][0]
    assert hidden == {"index": 0, "prompt": None, "offered": False}
    before = await balance(client, member_key)
    refused = await client.post(f"{API}/describe/{job_id}/suggestions/0/imagine", headers=bearer(member_key))
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "blocked_prompt"
    assert await balance(client, member_key) == before
    assert (await client.get(f"{API}/describe/{job_id}", headers=bearer(other_key))).status_code == 404
    stolen = await client.post(f"{API}/describe/{job_id}/suggestions/1/imagine", headers=bearer(other_key))
    assert stolen.status_code == 404


async def test_what_is_not_an_image_is_refused_and_free(client: httpx.AsyncClient, member_key: str) -> None:
    before = await balance(client, member_key)
    response = await describe(client, member_key, data_uri(b"not a picture at all"))
    assert response.status_code == 422 and response.json()["error"]["code"] == "bad_upload"
    assert await balance(client, member_key) == before


async def test_a_server_that_cannot_describe_says_so_before_the_image(
    data_dir: Path, tmp_path: Path, member_key: str
) -> None:
    """The default model, not downloaded here: 400 describe_unavailable naming the owner's command, no charge."""
    settings = make_settings(data_dir, database_path=tmp_path / "other.db")
    service = await ImagineService.open(settings)
    try:
        key = (await service.keys.issue(1, guild_id=GUILD_ID, created_by="console")).secret
        transport = httpx.ASGITransport(app=create_app(service, settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            response = await describe(other, key, "not even base64")
            interrogated = await other.post("/sdapi/v1/interrogate", json={"image": "x"}, headers=bearer(key))
        for answer in (response, interrogated):
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "describe_unavailable"
            assert "python -m engine.describe pull" in answer.json()["error"]["message"]
        assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0
    finally:
        await service.close()


@pytest.mark.slow
async def test_interrogate_answers_the_first_caption(client: httpx.AsyncClient, member_key: str) -> None:
    """A1111's interrogate: a describe job charged as one, answered with its first suggestion without --ar."""
    before = await balance(client, member_key)
    image = data_uri(png_bytes(64, 128))
    answer = await client.post(
        "/sdapi/v1/interrogate", json={"image": image, "model": "clip"}, headers=bearer(member_key)
    )
    assert answer.status_code == 200, answer.text
    caption = answer.json()["caption"]
    assert caption and "--ar" not in caption
    assert await balance(client, member_key) == before - 1
    jobs = (await client.get(f"{API}/jobs", headers=bearer(member_key))).json()
    description = (await client.get(f"{API}/describe/{jobs[0]['id']}", headers=bearer(member_key))).json()
    assert description["suggestions"][0]["prompt"] == f"{caption} --ar 1:2"


async def test_interrogate_refuses_other_interrogators(client: httpx.AsyncClient, member_key: str) -> None:
    answer = await client.post(
        "/sdapi/v1/interrogate", json={"image": "x", "model": "deepdanbooru"}, headers=bearer(member_key)
    )
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "unknown_interrogator"


async def test_the_routes_need_a_key(client: httpx.AsyncClient) -> None:
    for method, path in (("POST", f"{API}/describe"), ("GET", f"{API}/describe/1"), ("POST", "/sdapi/v1/interrogate")):
        assert (await client.request(method, path, json={})).status_code == 401
