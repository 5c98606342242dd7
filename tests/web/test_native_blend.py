"""The native API's image prompts: POST /blend and POST /jobs with image_prompts and image_weight, over the real
service and the session's engine (the tiny model and its tiny IP-Adapter); every refusal is JSON with Discord's
text and costs nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core import ImagineService
from tests.web.conftest import bearer
from tests.web.native import API, balance, bomb_png, create, data_uri, png_bytes, wait_for_job


def staged_files(service: ImagineService) -> set[Path]:
    staging = service.uploads_dir / ".staging"
    return set(staging.iterdir()) if staging.is_dir() else set()


async def blend(client: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    return await client.post(f"{API}/blend", json=body, headers=bearer(key))


@pytest.mark.slow
async def test_a_blend_is_charged_as_a_blend_and_renders(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """202 with its cost and the balance after it; the job is a blend of both images in the chosen shape."""
    before = await balance(client, member_key)
    images = [data_uri(png_bytes(color=(200, 0, 0))), data_uri(png_bytes(48, 64, (0, 0, 200)))]
    response = await blend(client, member_key, images=images, dimensions="portrait")
    assert response.status_code == 202, response.text
    created = response.json()
    [job] = created["jobs"]
    assert job["kind"] == "blend" and job["prompt"] == "blend of 2 images (portrait)"
    assert created["cost"] == job["cost"] > 0 and created["balance"] == before - created["cost"]
    done = await wait_for_job(client, member_key, job["id"])
    assert done["status"] == "completed", done["error"]
    assert (done["params"]["width"], done["params"]["height"]) == (48, 72)
    assert done["actions"] == ["upscale", "reroll", "vary"]
    stored = (await service.scheduler.get(job["id"])).params
    assert len(stored.image_prompts) == 2 and stored.ip_adapter == "tiny-ip-adapter"


@pytest.mark.slow
async def test_a_job_takes_image_prompts_and_their_weight(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    response = await create(
        client, member_key, prompt="a lamp --seed 2", image_prompts=[data_uri(png_bytes())], image_weight=0.4
    )
    assert response.status_code == 202, response.text
    [job] = response.json()["jobs"]
    assert job["kind"] == "imagine"
    done = await wait_for_job(client, member_key, job["id"])
    assert done["status"] == "completed", done["error"]
    stored = (await service.scheduler.get(job["id"])).params
    assert (len(stored.image_prompts), stored.image_weight, stored.prompt) == (1, 0.4, "a lamp")


@pytest.mark.parametrize(
    ("path", "body", "code", "words"),
    [
        ("blend", {"images": [data_uri(png_bytes())]}, "bad_prompt", "/blend mixes 2 to 5 images; 1 were given"),
        ("blend", {"images": [data_uri(png_bytes())] * 6}, "bad_prompt", "6 were given"),
        ("blend", {"images": ["x", "y"], "dimensions": "wide"}, "invalid_request", "dimensions"),
        ("blend", {"images": [data_uri(png_bytes()), "@@@@"]}, "bad_upload", "not valid base64"),
        ("blend", {"images": [data_uri(png_bytes()), data_uri(bomb_png())]}, "bad_upload", "pixels"),
        ("blend", {"images": [data_uri(png_bytes()), "!" * 20_000_000]}, "bad_upload", "the limit is"),
        ("jobs", {"prompt": "a cat", "image_weight": 0.5}, "bad_prompt", "--iw needs an image prompt"),
        ("jobs", {"prompt": "a cat --iw 2", "image_prompts": []}, "bad_prompt", "--iw needs an image prompt"),
        ("jobs", {"prompt": "a cat", "image_prompts": ["x"], "image_weight": 3}, "invalid_request", "image_weight"),
        ("jobs", {"prompt": "a cat", "image_prompts": ["x"] * 6}, "invalid_request", "image_prompts"),
        ("jobs", {"prompt": "https://example.com/a.png a cat"}, "bad_prompt", "example.com is not Discord's"),
        (
            "jobs",
            {"prompt": "a cat", "image_prompts": [data_uri(png_bytes(16, 16))]},
            "bad_upload",
            "at least 32 pixels",
        ),
    ],
)
async def test_refusals_are_422_and_cost_nothing(
    client: httpx.AsyncClient,
    member_key: str,
    service: ImagineService,
    path: str,
    body: dict[str, object],
    code: str,
    words: str,
) -> None:
    """The core's message (Discord's), nothing charged or queued, nothing left staged."""
    staged = staged_files(service)
    before = await balance(client, member_key)
    response = await client.post(f"{API}/{path}", json=body, headers=bearer(member_key))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert await balance(client, member_key) == before
    assert (await client.get(f"{API}/jobs", headers=bearer(member_key))).json() == []
    assert staged_files(service) == staged


async def test_blend_needs_a_key(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/blend", json={"images": ["a", "b"]})
    assert response.status_code == 401


async def test_a_surface_that_takes_no_image_prompts_refuses_image_links_uncharged(
    client: httpx.AsyncClient, member_key: str
) -> None:
    """The A1111 API has no image prompts: a prompt starting with a Discord image link is refused, not charged."""
    before = await balance(client, member_key)
    body = {"prompt": "https://cdn.discordapp.com/attachments/1/2/a.png a cat", "steps": 2}
    response = await client.post("/sdapi/v1/txt2img", json=body, headers=bearer(member_key))
    assert response.status_code == 422, response.text
    assert "image prompts are not taken here" in response.text
    assert await balance(client, member_key) == before
    assert (await client.get(f"{API}/jobs", headers=bearer(member_key))).json() == []
