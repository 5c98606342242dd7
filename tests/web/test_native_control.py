"""POST /api/v1/jobs with a control image: a ControlNet job rendered and charged at its own price, its V button
keeping the control image, and every refusal a 422 with Discord's text that costs nothing."""

from __future__ import annotations

import httpx
import pytest

from bot.core import ImagineService
from tests.web.conftest import bearer
from tests.web.native import API, balance, bomb_png, create, data_uri, png_bytes, wait_for_job


@pytest.mark.slow
async def test_a_control_image_makes_a_controlnet_job_and_v_keeps_it(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """control_image, control_mode and control_weight give a control job; V1 of it is a control job too."""
    before = await balance(client, member_key)
    response = await create(
        client,
        member_key,
        prompt="a lighthouse --seed 2",
        control_image=data_uri(png_bytes(96, 64)),
        control_mode="lineart",
        control_weight=1.5,
        images=2,
    )
    assert response.status_code == 202, response.text
    created = response.json()
    [job] = created["jobs"]
    assert job["kind"] == "control"
    assert created["cost"] > 0 and await balance(client, member_key) == before - created["cost"]
    assert (await wait_for_job(client, member_key, job["id"]))["status"] == "completed"
    stored = await service.scheduler.get(job["id"])
    assert (stored.params.control_mode, stored.params.control_weight) == ("lineart", 1.5)

    vary = await client.post(
        f"{API}/jobs/{job['id']}/actions", json={"action": "vary", "index": 1}, headers=bearer(member_key)
    )
    assert vary.status_code == 202, vary.text
    [child] = vary.json()["jobs"]
    assert child["kind"] == "control"
    assert (await wait_for_job(client, member_key, child["id"]))["status"] == "completed"
    varied = await service.scheduler.get(child["id"])
    assert varied.params.control_image == stored.params.control_image != ""


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"control_image": data_uri(png_bytes()), "control_mode": "depth"}, "bad_prompt", "needs a depth estimator"),
        ({"control_image": data_uri(png_bytes()), "control_weight": 3}, "invalid_request", "control_weight"),
        ({"control_image": data_uri(png_bytes()), "control_mode": "pose"}, "invalid_request", "control_mode"),
        ({"control_mode": "canny"}, "bad_prompt", "a control mode needs a control image"),
        ({"control_weight": 0.5}, "bad_prompt", "--cw needs a control image"),
        (
            {"control_image": data_uri(png_bytes()), "prompt": "a cat --controlnet tiny-controlnet-sdxl"},
            "bad_prompt",
            "is for sdxl models, but model `tiny` is sd15",
        ),
        ({"control_image": data_uri(bomb_png())}, "bad_upload", "pixels"),
        ({"control_image": data_uri(b"not an image")}, "bad_upload", "not an image"),
    ],
)
async def test_a_bad_control_request_is_422_and_costs_nothing(
    client: httpx.AsyncClient, member_key: str, body: dict[str, object], code: str, words: str
) -> None:
    before = await balance(client, member_key)
    response = await create(client, member_key, **{"prompt": "a cat", **body})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert await balance(client, member_key) == before
    assert (await client.get(f"{API}/jobs", headers=bearer(member_key))).json() == []
