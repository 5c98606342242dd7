"""The native API's jobs: asking for images as /imagine does, reading them back, pressing their buttons,
cancelling, and every refusal answered as JSON with the text Discord shows and nothing charged."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from bot.core import ImagineService
from config.settings import Settings
from tests.web.conftest import bearer
from tests.web.native import (
    API,
    balance,
    bomb_png,
    create,
    data_uri,
    mask_bytes,
    png_bytes,
    wait_for_job,
)
from web.app import create_app


def staged_files(service: ImagineService) -> set[Path]:
    staging = service.uploads_dir / ".staging"
    return set(staging.iterdir()) if staging.is_dir() else set()


@pytest.mark.slow
async def test_a_prompt_renders_and_its_images_come_back(client: httpx.AsyncClient, member_key: str) -> None:
    """202 with the charge and the queue place; the finished job lists its images, each a PNG with parameters."""
    before = await balance(client, member_key)
    response = await create(client, member_key, prompt="a red fox --seed 7")
    assert response.status_code == 202, response.text
    created = response.json()
    [job] = created["jobs"]
    assert (created["lane"], created["tier"]) == ("fast", "free")
    assert created["cost"] == job["cost"] > 0 and created["balance"] == before - created["cost"]
    assert job["status"] in ("queued", "running") and job["params"]["seed"] == 7
    done = await wait_for_job(client, member_key, job["id"])
    assert done["status"] == "completed"
    assert done["actions"] == ["upscale", "reroll", "vary"]
    assert [image["index"] for image in done["images"]] == [0, 1, 2, 3]
    assert done["images"][1]["url"] == f"{API}/jobs/{job['id']}/images/1"
    single = await client.get(done["images"][1]["url"], headers=bearer(member_key))
    assert single.status_code == 200 and single.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(single.content)) as image:
        assert "a red fox" in image.text["parameters"] and "Seed: 8" in image.text["parameters"]
    grid = await client.get(done["grid_url"], headers=bearer(member_key))
    assert grid.status_code == 200 and grid.headers["content-type"] == "image/jpeg"
    missing = await client.get(f"{API}/jobs/{job['id']}/images/4", headers=bearer(member_key))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "image_not_found"


@pytest.mark.slow
async def test_buttons_follow_a_grid_then_an_upscale(client: httpx.AsyncClient, member_key: str) -> None:
    """upscale of image 2 (index 1), then the upscale's own buttons; a button the job lacks is refused."""
    grid = (await create(client, member_key, prompt="a lighthouse")).json()["jobs"][0]
    await wait_for_job(client, member_key, grid["id"])
    refused = await client.post(
        f"{API}/jobs/{grid['id']}/actions", json={"action": "pan_left"}, headers=bearer(member_key)
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "action_not_offered"
    response = await client.post(
        f"{API}/jobs/{grid['id']}/actions", json={"action": "upscale", "index": 1}, headers=bearer(member_key)
    )
    assert response.status_code == 202, response.text
    [upscale] = response.json()["jobs"]
    assert (upscale["kind"], upscale["parent_id"], upscale["parent_index"]) == ("upscale", grid["id"], 1)
    done = await wait_for_job(client, member_key, upscale["id"])
    assert done["actions"][:2] == ["vary_subtle", "vary_strong"] and "pan_left" in done["actions"]
    assert done["params"]["width"] == 2 * grid["params"]["width"]


@pytest.mark.slow
async def test_an_image_and_a_mask_as_data_uris_make_an_inpaint(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """Base64 and data URIs both decode; the request is an inpaint of the sent image."""
    response = await create(
        client,
        member_key,
        prompt="a window",
        image=data_uri(png_bytes()),
        mask=data_uri(mask_bytes()).split(",", 1)[1],
        images=1,
    )
    assert response.status_code == 202, response.text
    [job] = response.json()["jobs"]
    assert job["kind"] == "inpaint" and job["params"]["images"] == 1
    assert (await wait_for_job(client, member_key, job["id"]))["status"] == "completed"


async def test_listing_is_newest_first_in_pages(client: httpx.AsyncClient, member_key: str) -> None:
    """``limit`` and ``before`` page through the member's own jobs."""
    response = await create(client, member_key, prompt="a pebble --repeat 3 --relax")
    ids = [job["id"] for job in response.json()["jobs"]]
    first = await client.get(f"{API}/jobs", params={"limit": 2}, headers=bearer(member_key))
    assert [job["id"] for job in first.json()] == ids[::-1][:2]
    rest = await client.get(f"{API}/jobs", params={"before": ids[1]}, headers=bearer(member_key))
    assert [job["id"] for job in rest.json()] == [ids[0]]
    over = await client.get(f"{API}/jobs", params={"limit": 201}, headers=bearer(member_key))
    assert over.status_code == 422 and over.json()["error"]["code"] == "invalid_request"


async def test_cancelling_refunds(client: httpx.AsyncClient, member_key: str) -> None:
    """DELETE stops the job and gives its credits back; a second DELETE is refused."""
    before = await balance(client, member_key)
    job = (await create(client, member_key, prompt="a slow river --steps 60")).json()["jobs"][0]
    assert await balance(client, member_key) == before - job["cost"]
    response = await client.delete(f"{API}/jobs/{job['id']}", headers=bearer(member_key))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert await balance(client, member_key) == before
    again = await client.delete(f"{API}/jobs/{job['id']}", headers=bearer(member_key))
    assert again.status_code == 400 and "already cancelled" in again.json()["error"]["message"]


async def test_another_members_job_is_not_there(client: httpx.AsyncClient, member_key: str, other_key: str) -> None:
    """Reading, images, events, cancelling and buttons of someone else's job: 404 job_not_found, never 403."""
    job = (await create(client, member_key, prompt="a secret garden --relax")).json()["jobs"][0]
    base = f"{API}/jobs/{job['id']}"
    requests = [
        ("GET", base, None),
        ("GET", f"{base}/images/0", None),
        ("GET", f"{base}/grid", None),
        ("GET", f"{base}/events", None),
        ("DELETE", base, None),
        ("POST", f"{base}/actions", {"action": "upscale", "index": 0}),
    ]
    for method, url, body in requests:
        response = await client.request(method, url, json=body, headers=bearer(other_key))
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"] == {"code": "job_not_found", "message": f"job {job['id']} does not exist"}
    assert (await client.get(base, headers=bearer(member_key))).json()["status"] != "cancelled"


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"prompt": "a cat --steps 999"}, "bad_prompt", "--steps"),
        ({"prompt": "a cat --bogus 3"}, "bad_prompt", "--bogus"),
        ({"prompt": "a cat", "width": 64}, "invalid_request", "width and height"),
        ({"prompt": "a cat", "width": 65, "height": 64}, "bad_prompt", "multiples of"),
        ({"prompt": "a cat", "images": 5}, "invalid_request", "images"),
        ({"prompt": "a cat", "mask": data_uri(b"x")}, "bad_prompt", "a mask needs an image"),
        ({"prompt": "a cat", "model": "nope"}, "bad_prompt", "nope"),
        ({"prompt": "a cat", "image": "data:image/png,raw"}, "bad_upload", "not base64"),
        ({"prompt": "a cat", "image": "@@@@"}, "bad_upload", "not valid base64"),
        ({"prompt": "a cat", "image": ""}, "bad_upload", "empty"),
        ({"prompt": "a cat", "image": data_uri(b"not an image")}, "bad_upload", "not an image"),
        ({"prompt": "a cat", "strenght": 0.5}, "invalid_request", "strenght"),
        ({"prompt": "a cat", "sweeps": ["colour=1,2"]}, "bad_prompt", "colour"),
        ({"prompt": "a cat", "lane": "slow"}, "invalid_request", "lane"),
    ],
)
async def test_a_bad_request_is_422_naming_what_to_fix_and_costs_nothing(
    client: httpx.AsyncClient, member_key: str, body: dict[str, object], code: str, words: str
) -> None:
    """The parser's message (the one Discord shows) names the flag or option; nothing is charged or queued."""
    before = await balance(client, member_key)
    response = await client.post(f"{API}/jobs", json=body, headers=bearer(member_key))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert await balance(client, member_key) == before
    assert (await client.get(f"{API}/jobs", headers=bearer(member_key))).json() == []


async def test_an_upload_bomb_is_refused_and_nothing_stays_staged(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """A 10-gigapixel PNG header as the mask: 422 bad_upload; the image staged before it is dropped again."""
    staged_before = staged_files(service)
    before = await balance(client, member_key)
    response = await create(client, member_key, prompt="a door", image=data_uri(png_bytes()), mask=data_uri(bomb_png()))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_upload" and "pixels" in error["message"]
    assert await balance(client, member_key) == before
    assert staged_files(service) == staged_before


async def test_an_image_too_large_is_refused_by_its_length_before_decoding(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """Base64 that would decode past the upload limit gets the size message, not the malformed-base64 one."""
    limit = service.upload_limits.max_bytes
    too_long = "!" * ((limit // 3 + 1) * 4)
    response = await create(client, member_key, prompt="a boat", image=too_long)
    assert response.status_code == 422
    assert "the limit is" in response.json()["error"]["message"]


async def test_not_enough_credits_is_402(
    client: httpx.AsyncClient, member_key: str, moderator_key: str, service: ImagineService
) -> None:
    """With the balance set to 0 a paid job is refused with the cost, the balance and the free --relax option."""
    member = (await client.get(f"{API}/me", headers=bearer(member_key))).json()["user_id"]
    response = await client.post(
        f"{API}/admin/credits",
        json={"user_id": member, "change": "set", "amount": 0, "reason": "test"},
        headers=bearer(moderator_key),
    )
    assert response.json() == {"user_id": member, "balance": 0}
    refused = await create(client, member_key, prompt="a castle")
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "insufficient_credits" and "--relax" in refused.json()["error"]["message"]
    assert await balance(client, member_key) == 0


async def test_a_banned_member_is_refused_and_not_charged(
    client: httpx.AsyncClient, member_key: str, moderator_key: str
) -> None:
    """403 banned with Discord's text; the balance stays; after unban the member may ask again."""
    member = (await client.get(f"{API}/me", headers=bearer(member_key))).json()["user_id"]
    before = await balance(client, member_key)
    ban = await client.post(
        f"{API}/admin/ban", json={"user_id": member, "reason": "spam"}, headers=bearer(moderator_key)
    )
    assert ban.json() == {"user_id": member, "banned": True}
    refused = await create(client, member_key, prompt="a castle --relax")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "banned"
    assert (await client.get(f"{API}/me", headers=bearer(member_key))).json()["banned"] is True
    assert await balance(client, member_key) == before
    unban = await client.post(
        f"{API}/admin/unban", json={"user_id": member, "reason": "ok"}, headers=bearer(moderator_key)
    )
    assert unban.json()["banned"] is False
    assert (await create(client, member_key, prompt="a castle --relax")).status_code == 202


async def test_a_blocked_word_is_refused_until_unblocked(
    client: httpx.AsyncClient, member_key: str, moderator_key: str
) -> None:
    """The moderator's blocklist applies to the key's server: 422 blocked_prompt, nothing charged."""
    added = await client.post(
        f"{API}/admin/blocklist", json={"words": ["gargoyle"], "reason": "test"}, headers=bearer(moderator_key)
    )
    assert added.json() == {"words": ["gargoyle"], "changed": ["gargoyle"]}
    before = await balance(client, member_key)
    refused = await create(client, member_key, prompt="a stone Gargoyle on a roof")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "blocked_prompt" and "gargoyle" in refused.json()["error"]["message"]
    assert await balance(client, member_key) == before
    listed = await client.get(f"{API}/admin/blocklist", headers=bearer(moderator_key))
    assert listed.json()["words"] == ["gargoyle"]
    removed = await client.delete(f"{API}/admin/blocklist", params={"word": "gargoyle"}, headers=bearer(moderator_key))
    assert removed.json() == {"words": [], "changed": ["gargoyle"]}
    assert (await create(client, member_key, prompt="a stone gargoyle --relax")).status_code == 202


async def test_a_paused_queue_is_503(client: httpx.AsyncClient, member_key: str, moderator_key: str) -> None:
    """Pausing refuses new jobs with Discord's text until resumed."""
    paused = await client.post(f"{API}/admin/pause", json={"reason": "upgrade"}, headers=bearer(moderator_key))
    assert paused.status_code == 200 and paused.json()["paused"] is True
    refused = await create(client, member_key, prompt="a bridge")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "queue_paused"
    resumed = await client.post(f"{API}/admin/resume", headers=bearer(moderator_key))
    assert resumed.json()["paused"] is False


class PulledBody:
    """A request body sent in 64 KiB chunks that counts what the server pulled."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = b"x" * 65536
        while self.pulled < self.size:
            self.pulled += len(chunk)
            yield chunk


async def test_an_oversized_body_is_413_before_it_is_read(
    client: httpx.AsyncClient, member_key: str, settings: Settings
) -> None:
    """A Content-Length over web.max_body_bytes is refused without pulling a byte of the body."""
    limit = settings.web.max_body_bytes
    body = PulledBody(limit + 1)
    headers = {**bearer(member_key), "Content-Type": "application/json", "Content-Length": str(limit + 1)}
    response = await client.post(f"{API}/jobs", content=body, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert body.pulled == 0


async def test_a_chunked_body_is_cut_off_at_the_limit(
    service: ImagineService, settings: Settings, member_key: str
) -> None:
    """Without a Content-Length the body is counted as it arrives and refused once past the limit."""
    small = settings.model_copy(update={"web": settings.web.model_copy(update={"max_body_bytes": 64 * 1024})})
    transport = httpx.ASGITransport(app=create_app(service, small))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as limited:
        body = PulledBody(10 * 1024 * 1024)
        headers = {**bearer(member_key), "Content-Type": "application/json"}
        response = await limited.post(f"{API}/jobs", content=body, headers=headers)
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert body.pulled <= 2 * 64 * 1024
