"""A hostile member through the web surfaces: every refused request stores nothing, charges nothing and leaves no
upload behind; another member's jobs are not found; a cookie alone cannot change anything."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core import ImagineService
from config.settings import Settings
from tests.conftest import make_settings
from tests.web.conftest import MEMBER_ID, bearer
from tests.web.native import API, bomb_png, data_uri, png_bytes, wait_for_job
from web.auth import COOKIE

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """The tiny models, and the tiny BLIP for /describe (so a describe request reaches its image checks)."""
    return make_settings(data_dir, database_path=tmp_path / "imagine.db", describe={"source": "tiny:blip"})


def truncated_png() -> bytes:
    """A valid PNG cut off half-way through."""
    whole = png_bytes(64, 64)
    return whole[: len(whole) // 2]


async def job_rows(service: ImagineService) -> int:
    return int(await service.store.fetch_value("SELECT COUNT(*) FROM jobs") or 0)


async def member_balance(service: ImagineService, user_id: int = MEMBER_ID) -> int:
    return (await service.ledger.member(user_id)).balance


_UPLOADS_BEFORE: set[Path] = set()
"""The uploads folder's files when the test began (the session shares one data folder with other tests' jobs)."""


def all_uploads(service: ImagineService) -> set[Path]:
    root = Path(service.uploads_dir)
    return {path for path in root.rglob("*") if path.is_file()} if root.is_dir() else set()


@pytest.fixture(autouse=True)
def _uploads_before(service: ImagineService) -> None:
    _UPLOADS_BEFORE.clear()
    _UPLOADS_BEFORE.update(all_uploads(service))


def uploaded_files(service: ImagineService) -> list[Path]:
    """The files stored in the uploads folder since the test began."""
    return sorted(all_uploads(service) - _UPLOADS_BEFORE)


def requests_with(image: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Every web route that takes an image, carrying ``image``."""
    uri = data_uri(image)
    raw = base64.b64encode(image).decode("ascii")
    return [
        (f"{API}/jobs", {"prompt": "a fox", "image": uri}),
        (f"{API}/jobs", {"prompt": "a fox", "control_image": uri}),
        (f"{API}/blend", {"images": [data_uri(png_bytes()), uri]}),
        (f"{API}/describe", {"image": uri}),
        ("/sdapi/v1/img2img", {"prompt": "a fox", "init_images": [raw], "steps": 2, "width": 64, "height": 64}),
        ("/sdapi/v1/png-info", {"image": raw}),
    ]


async def assert_nothing_happened(service: ImagineService, balance_before: int) -> None:
    assert await job_rows(service) == 0
    assert await member_balance(service) == balance_before
    assert uploaded_files(service) == []


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(bomb_png(30_000, 30_000), id="bomb-30000x30000"),
        pytest.param(truncated_png(), id="truncated"),
        pytest.param((BAD / "truncated.png").read_bytes(), id="data-truncated"),
        pytest.param((BAD / "pixel_flood.png").read_bytes(), id="data-pixel-flood"),
    ],
)
async def test_a_bad_image_is_refused_everywhere_without_a_trace(
    client: httpx.AsyncClient, member_key: str, service: ImagineService, image: bytes
) -> None:
    """A bomb or a cut-off file: 4xx on every route, no job row, no debit, no staged file left."""
    before = await member_balance(service)
    for path, body in requests_with(image):
        response = await client.post(path, json=body, headers=bearer(member_key))
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "bad_upload", (path, response.text)
        await assert_nothing_happened(service, before)


@pytest.mark.parametrize(
    "prompt",
    [
        pytest.param("a g\u043er\u0435 scene", id="cyrillic-o-e"),
        pytest.param("a go\u200bre scene", id="zero-width-space"),
        pytest.param("a G\u200d\u041eR\u0415 scene", id="capitals-and-joiner"),
    ],
)
async def test_a_blocked_word_in_look_alike_letters_is_refused_and_not_charged(
    client: httpx.AsyncClient, member_key: str, moderator_key: str, service: ImagineService, prompt: str
) -> None:
    """Blocked through the admin API, the word is refused on the native and the A1111 routes, before any charge."""
    added = await client.post(f"{API}/admin/blocklist", json={"words": ["gore"]}, headers=bearer(moderator_key))
    assert added.status_code == 200, added.text
    before = await member_balance(service)
    raw = base64.b64encode(png_bytes()).decode("ascii")
    for path, body in [
        (f"{API}/jobs", {"prompt": prompt}),
        (f"{API}/jobs", {"prompt": prompt, "image": data_uri(png_bytes())}),
        ("/sdapi/v1/txt2img", {"prompt": prompt, "steps": 2, "width": 64, "height": 64}),
        ("/sdapi/v1/img2img", {"prompt": prompt, "init_images": [raw], "steps": 2, "width": 64, "height": 64}),
    ]:
        response = await client.post(path, json=body, headers=bearer(member_key))
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert "block" in response.text.lower(), (path, response.text)
        await assert_nothing_happened(service, before)


async def test_a_banned_member_is_refused_everywhere_without_a_trace(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """A ban stops every route that would queue work; nothing is stored or charged."""
    await service.ledger.set_banned(MEMBER_ID, True, actor="test")
    before = await member_balance(service)
    raw = base64.b64encode(png_bytes()).decode("ascii")
    for path, body in [
        *requests_with(png_bytes())[:-1],
        ("/sdapi/v1/txt2img", {"prompt": "a fox", "steps": 2, "width": 64, "height": 64}),
        ("/sdapi/v1/img2img", {"prompt": "a fox", "init_images": [raw], "steps": 2, "width": 64, "height": 64}),
    ]:
        response = await client.post(path, json=body, headers=bearer(member_key))
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert "banned" in response.text.lower(), (path, response.text)
        await assert_nothing_happened(service, before)


@pytest.mark.parametrize(
    "init_image",
    [
        "https://127.0.0.1:1/a.png",
        "http://127.0.0.1:1/a.png",
        "file:///etc/passwd",
        "/etc/passwd",
        "data:image/png;base64,,,,",
    ],
)
async def test_an_init_image_that_is_not_inline_is_refused_without_a_fetch(
    client: httpx.AsyncClient, member_key: str, service: ImagineService, init_image: str
) -> None:
    """A1111's init_images take only base64: a URL or a path is a bad upload, nothing queued or charged."""
    before = await member_balance(service)
    response = await client.post(
        "/sdapi/v1/img2img",
        json={"prompt": "a fox", "init_images": [init_image], "steps": 2, "width": 64, "height": 64},
        headers=bearer(member_key),
    )
    assert response.status_code in (400, 422), response.text
    assert "root:" not in response.text
    await assert_nothing_happened(service, before)


async def test_a_cookie_without_the_request_header_cannot_queue(
    app: Any, member_key: str, service: ImagineService
) -> None:
    """A cross-site post carries the cookie but not the header: 401 on every route that queues, nothing stored."""
    before = await member_balance(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as browser:
        browser.cookies.set(COOKIE, member_key)
        for path, body in [
            *requests_with(png_bytes())[:-1],
            (f"{API}/jobs", {"prompt": "a fox"}),
            ("/sdapi/v1/txt2img", {"prompt": "a fox", "steps": 2, "width": 64, "height": 64}),
        ]:
            response = await browser.post(path, json=body)
            assert response.status_code == 401, (path, response.status_code, response.text)
            await assert_nothing_happened(service, before)


@pytest.mark.slow
async def test_another_members_job_is_not_found_and_costs_nothing(
    client: httpx.AsyncClient, member_key: str, other_key: str, service: ImagineService
) -> None:
    """Every read and every button on someone else's finished job is 404; no job is queued and nothing charged."""
    made = await client.post(f"{API}/jobs", json={"prompt": "a fox --steps 2"}, headers=bearer(other_key))
    assert made.status_code == 202, made.text
    [job] = made.json()["jobs"]
    done = await wait_for_job(client, other_key, job["id"])
    assert done["status"] == "completed", done
    rows, before = await job_rows(service), await member_balance(service)
    for action in ({"action": "upscale", "index": 0}, {"action": "vary", "index": 0}, {"action": "reroll"}):
        response = await client.post(f"{API}/jobs/{job['id']}/actions", json=action, headers=bearer(member_key))
        assert response.status_code == 404, (action, response.status_code, response.text)
    for path in ("", "/images/0", "/grid", "/events"):
        response = await client.get(f"{API}/jobs/{job['id']}{path}", headers=bearer(member_key))
        assert response.status_code == 404, (path, response.status_code, response.text)
        assert b"fox" not in response.content
    stolen = await client.post(f"{API}/describe/{job['id']}/suggestions/0/imagine", headers=bearer(member_key))
    assert stolen.status_code == 404, stolen.text
    assert await job_rows(service) == rows
    assert await member_balance(service) == before


@pytest.mark.parametrize("size", [30_000, 100_000])
async def test_png_info_refuses_a_bomb_as_a_bad_upload(client: httpx.AsyncClient, member_key: str, size: int) -> None:
    """A PNG declaring gigapixels is a 4xx bad_upload naming the pixel limit, not a server error."""
    raw = base64.b64encode(bomb_png(size, size)).decode("ascii")
    response = await client.post("/sdapi/v1/png-info", json={"image": raw}, headers=bearer(member_key))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "bad_upload"
    assert "pixels" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"prompt": "a fox", "sweeps": ["prompt=fox,g\u043er\u0435"]}, id="sweep-swaps-it-in"),
        pytest.param({"prompt": "a {fox, g\u200bore}"}, id="permutation"),
    ],
)
async def test_a_blocked_word_cannot_be_swapped_in_by_a_sweep_or_permutation(
    client: httpx.AsyncClient, member_key: str, moderator_key: str, service: ImagineService, body: dict[str, Any]
) -> None:
    """A sweep value or a permutation that spells the blocked word in look-alikes refuses the whole request."""
    added = await client.post(f"{API}/admin/blocklist", json={"words": ["gore"]}, headers=bearer(moderator_key))
    assert added.status_code == 200, added.text
    before = await member_balance(service)
    response = await client.post(f"{API}/jobs", json=body, headers=bearer(member_key))
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "block" in response.text.lower(), response.text
    await assert_nothing_happened(service, before)


async def test_a_member_without_credits_leaves_no_upload_behind(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """Refused at the charge, after the images were read and staged: the staged files are discarded."""
    await service.ledger.set_balance(MEMBER_ID, 0, actor="test", reason="nothing left")
    raw = base64.b64encode(png_bytes()).decode("ascii")
    for path, body in [
        *requests_with(png_bytes())[:-1],
        ("/sdapi/v1/img2img", {"prompt": "a fox", "init_images": [raw], "steps": 2, "width": 64, "height": 64}),
    ]:
        response = await client.post(path, json=body, headers=bearer(member_key))
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert "credit" in response.text.lower(), (path, response.text)
        await assert_nothing_happened(service, 0)
