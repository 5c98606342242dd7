"""The A1111-compatible API (``/sdapi/v1``) over the real app, service and tiny-model engine: what A1111 clients
send, in the order they send it, answered with real renders, charged and refused as every other job is."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image, PngImagePlugin

from bot.core import ImagineService, UploadError, UploadLimits
from tests.web.a1111_keys import CLIENT_INFO_KEYS
from tests.web.conftest import MEMBER_ID, bearer
from web import a1111_api
from web.a1111_common import decode_a1111_image
from web.errors import install_error_handlers

INFO_KEYS = CLIENT_INFO_KEYS
CLIENT_FIELDS: dict[str, Any] = {
    "styles": ["None"],
    "seed_resize_from_h": 0,
    "seed_resize_from_w": 0,
    "denoising_strength": None,
    "restore_faces": False,
    "enable_hr": False,
    "override_settings": {"CLIP_stop_at_last_layers": 1},
    "alwayson_scripts": {},
    "send_images": True,
    "save_images": False,
    "subseed": -1,
    "subseed_strength": 0,
}
"""Fields A1111 clients send that this server has no use for."""


def basic(key: str, user: str = "aiya") -> dict[str, str]:
    """HTTP Basic, as A1111 clients send ``--api-auth`` credentials."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def png_of(image: Image.Image, **text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def decoded(image: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(image)))


async def balance(service: ImagineService) -> int:
    return (await service.ledger.member(MEMBER_ID)).balance


async def job_count(service: ImagineService) -> int:
    return int(await service.store.fetch_value("SELECT COUNT(*) FROM jobs WHERE user_id = ?", (MEMBER_ID,)) or 0)


async def debits(service: ImagineService, job_id: int) -> list[int]:
    """The charges of one job in the ledger."""
    return [entry.delta for entry in await service.ledger.entries(MEMBER_ID, 200) if entry.job_id == job_id]


def txt2img_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": "a red fox",
        "negative_prompt": "blur",
        "seed": 1234,
        "steps": 4,
        "cfg_scale": 6,
        "width": 64,
        "height": 64,
        "sampler_name": "Euler a",
        **CLIENT_FIELDS,
    }
    body.update(fields)
    return body


# --- without rendering ------------------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/sdapi/v1/txt2img"),
    ("POST", "/sdapi/v1/img2img"),
    ("GET", "/sdapi/v1/options"),
    ("POST", "/sdapi/v1/options"),
    ("GET", "/sdapi/v1/sd-models"),
    ("GET", "/sdapi/v1/samplers"),
    ("GET", "/sdapi/v1/schedulers"),
    ("GET", "/sdapi/v1/progress"),
    ("POST", "/sdapi/v1/interrupt"),
    ("POST", "/sdapi/v1/skip"),
    ("POST", "/sdapi/v1/png-info"),
    ("GET", "/sdapi/v1/cmd-flags"),
    ("GET", "/sdapi/v1/loras"),
    ("GET", "/sdapi/v1/embeddings"),
    ("POST", "/sdapi/v1/interrogate"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_a_key(client: httpx.AsyncClient, method: str, path: str) -> None:
    """401 with the JSON error and the challenge A1111 clients look for (AIYA probes /cmd-flags for it)."""
    response = await client.request(method, path, json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert "Basic" in response.headers["www-authenticate"]


async def test_internal_ping_answers_an_empty_object_to_a_valid_key(service: ImagineService, member_key: str) -> None:
    """GET /internal/ping (SillyTavern's connection test, outside /sdapi/v1): {} with a key, 401 without one."""
    app = FastAPI()
    app.state.service = service
    install_error_handlers(app)
    app.include_router(a1111_api.internal_router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        answer = await client.get("/internal/ping", headers=basic(member_key))
        refused = await client.get("/internal/ping")
    assert (answer.status_code, answer.json()) == (200, {})
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized")


async def test_the_lists_clients_read_at_start_up(client: httpx.AsyncClient, member_key: str) -> None:
    """Samplers by their A1111 names, the member's models as checkpoints, and honest empty lists."""
    headers = basic(member_key)
    samplers = (await client.get("/sdapi/v1/samplers", headers=headers)).json()
    assert [item["name"] for item in samplers] == [
        "Euler a",
        "Euler",
        "DPM++ 2M",
        "DPM++ 2M Karras",
        "DDIM",
        "UniPC",
        "LCM",
    ]
    assert "euler_a_trailing" in samplers[0]["aliases"]
    models = (await client.get("/sdapi/v1/sd-models", headers=headers)).json()
    assert models == [
        {"title": "tiny", "model_name": "tiny", "hash": None, "sha256": None, "filename": "tiny", "config": None}
    ]
    assert (await client.get("/sdapi/v1/embeddings", headers=headers)).json() == {"loaded": {}, "skipped": {}}
    empty = ("upscalers", "latent-upscale-modes", "sd-vae", "prompt-styles", "face-restorers", "hypernetworks")
    for path in (f"/sdapi/v1/{name}" for name in empty):
        assert (await client.get(path, headers=headers)).json() == []
    flags = (await client.get("/sdapi/v1/cmd-flags", headers=headers)).json()
    assert flags["api"] is True


async def test_options_switch_the_members_model_only_to_one_they_may_use(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """An unknown checkpoint is refused with the titles there are; a known one becomes the member's model; other
    options are accepted and ignored."""
    headers = bearer(member_key)
    assert (await client.get("/sdapi/v1/options", headers=headers)).json()["sd_model_checkpoint"] == "tiny"
    refused = await client.post("/sdapi/v1/options", headers=headers, json={"sd_model_checkpoint": "sdxl"})
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "unknown_model",
        "message": "model `sdxl` is not available to you on this server; use one of: tiny",
    }
    answer = await client.post(
        "/sdapi/v1/options", headers=headers, json={"sd_model_checkpoint": "tiny.safetensors [abcdef0123]", "x": 1}
    )
    assert answer.status_code == 200
    assert answer.json()["sd_model_checkpoint"] == "tiny"
    assert (await service.preferences.get(MEMBER_ID)).model == "tiny"


async def test_an_unknown_sampler_is_422_with_the_names_that_exist(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """Nothing is queued or charged."""
    before = await balance(service)
    response = await client.post(
        "/sdapi/v1/txt2img", headers=bearer(member_key), json=txt2img_body(sampler_name="DPM++ SDE Karras")
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_sampler"
    assert "use one of: Euler a, Euler, DPM++ 2M, DPM++ 2M Karras, DDIM, UniPC, LCM" in error["message"]
    assert (await balance(service), await job_count(service)) == (before, 0)


async def test_a_banned_member_is_refused(client: httpx.AsyncClient, service: ImagineService, member_key: str) -> None:
    """403, as in Discord."""
    await service.ledger.set_banned(MEMBER_ID, True, actor="test")
    response = await client.post("/sdapi/v1/txt2img", headers=bearer(member_key), json=txt2img_body())
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "banned"
    assert await job_count(service) == 0


async def test_without_enough_credits_nothing_is_charged(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """402 for the whole request (two jobs here); the balance stays."""
    await service.ledger.set_balance(MEMBER_ID, 1, actor="test", reason="almost nothing left")
    response = await client.post("/sdapi/v1/txt2img", headers=bearer(member_key), json=txt2img_body(n_iter=2))
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_credits"
    assert (await balance(service), await job_count(service)) == (1, 0)


@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        ({"batch_size": 5}, "invalid_request", "batch_size 5 is out of range"),
        ({"n_iter": 99}, "invalid_request", "n_iter 99 is out of range"),
        ({"width": 60}, "bad_prompt", "multiples of 8"),
        ({"steps": 500}, "bad_prompt", "--steps"),
        ({"prompt": ""}, "bad_prompt", "the prompt is empty"),
        ({"lane": "warp"}, "unknown_lane", "lane `warp` is not a lane"),
        ({"override_settings": {"sd_model_checkpoint": "nope"}}, "unknown_model", "use one of: tiny"),
    ],
)
async def test_what_the_core_or_the_mapping_refuses_is_422(
    client: httpx.AsyncClient, service: ImagineService, member_key: str, fields: dict[str, Any], code: str, says: str
) -> None:
    """Each refusal says what to change, before anything is queued."""
    response = await client.post("/sdapi/v1/txt2img", headers=bearer(member_key), json=txt2img_body(**fields))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert says in response.json()["error"]["message"]
    assert await job_count(service) == 0


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "invalid_request"),
        ({"init_images": ["this is not base64!"]}, "bad_upload"),
        ({"init_images": ["https://example.com/a.png"]}, "bad_upload"),
        ({"init_images": [base64.b64encode(b"not an image at all").decode()]}, "bad_upload"),
    ],
)
async def test_an_img2img_without_a_usable_image_is_422(
    client: httpx.AsyncClient, service: ImagineService, member_key: str, fields: dict[str, Any], code: str
) -> None:
    """No image, one that is not base64, a URL (never fetched), bytes that are no image: refused, nothing queued."""
    response = await client.post("/sdapi/v1/img2img", headers=bearer(member_key), json=txt2img_body(**fields))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert await job_count(service) == 0


PNG_BYTES = b"\x89PNG\r\n\x1a\n fake"
PNG_B64 = base64.b64encode(PNG_BYTES).decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PNG_B64, PNG_BYTES),
        (f"  data:image/png;base64,{PNG_B64}\n", PNG_BYTES),
        (f"\n{PNG_B64[:8]}\n{PNG_B64[8:]}  ", PNG_BYTES),
        ("https://example.com/a.png", "is a URL; this server does not fetch URLs"),
        ("  http://example.com/a.png", "is a URL"),
        ("data:image/png,rawbytes", "data URI is not base64"),
        ("this is not base64!", "is not valid base64"),
        ("   ", "is empty"),
        ("@" * 24, "the limit is"),
    ],
)
def test_an_image_sent_as_text_decodes_or_says_what_to_send(text: str, expected: bytes | str) -> None:
    """Base64 or a data URI, surrounding whitespace ignored; a URL, a text data URI, bad base64, nothing, or too
    many bytes (refused by its length before decoding: this text is no base64 at all) says what to send instead."""
    limits = UploadLimits(max_bytes=16)
    if isinstance(expected, bytes):
        assert decode_a1111_image(text, limits, "init image") == expected
    else:
        with pytest.raises(UploadError, match=expected):
            decode_a1111_image(text, limits, "init image")


async def test_png_info_reads_a_pngs_parameters_and_a_jpegs_exif(client: httpx.AsyncClient, member_key: str) -> None:
    """The text as written, the other text chunks, and the text parsed as A1111 parses it."""
    text = "a fox\nNegative prompt: blur\nSteps: 4, Sampler: Euler a, CFG scale: 6, Seed: 7, Size: 64x48, Model: tiny"
    png = png_of(Image.new("RGB", (64, 48)), parameters=text, Software="test")
    answer = await client.post(
        "/sdapi/v1/png-info",
        headers=basic(member_key),
        json={"image": "data:image/png;base64," + base64.b64encode(png).decode()},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["info"] == text
    assert body["items"] == {"Software": "test"}
    assert body["parameters"]["Seed"] == "7"
    assert (body["parameters"]["Size-1"], body["parameters"]["Size-2"]) == ("64", "48")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + text.encode("utf-16-be")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buffer, format="JPEG", exif=exif.tobytes())
    jpeg = await client.post(
        "/sdapi/v1/png-info", headers=basic(member_key), json={"image": base64.b64encode(buffer.getvalue()).decode()}
    )
    assert jpeg.json()["info"] == text
    plain = await client.post(
        "/sdapi/v1/png-info",
        headers=basic(member_key),
        json={"image": base64.b64encode(png_of(Image.new("RGB", (8, 8)))).decode()},
    )
    assert plain.json() == {"info": "", "items": {}, "parameters": {}}


@pytest.mark.parametrize(
    "image",
    [
        base64.b64encode(b"GIF89a not really").decode(),
        "@@@@",
        base64.b64encode(b"\0" * (10 * 1024 * 1024 + 1)).decode(),
    ],
)
async def test_png_info_refuses_what_is_no_image_or_too_large(
    client: httpx.AsyncClient, member_key: str, image: str
) -> None:
    """Checked like any upload: its size first (before decoding), then what Pillow makes of it."""
    answer = await client.post("/sdapi/v1/png-info", headers=bearer(member_key), json={"image": image})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "bad_upload"


async def test_progress_and_interrupt_with_nothing_running(client: httpx.AsyncClient, member_key: str) -> None:
    """Progress 0 and an idle state; an interrupt stops nothing and is no error (as in A1111)."""
    progress = (await client.get("/sdapi/v1/progress", headers=bearer(member_key))).json()
    assert (progress["progress"], progress["eta_relative"], progress["current_image"]) == (0.0, 0.0, None)
    assert progress["state"]["job_count"] == 0
    for path in ("/sdapi/v1/interrupt", "/sdapi/v1/skip"):
        answer = await client.post(path, headers=bearer(member_key))
        assert (answer.status_code, answer.json()) == (200, {"cancelled": []})


# --- with renders -----------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_txt2img_answers_with_pngs_their_info_and_one_charge(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """One image, a PNG with its parameters chunk; info is A1111's JSON; the job is charged once; the fields this
    server ignores come back in parameters."""
    before = await balance(service)
    response = await client.post("/sdapi/v1/txt2img", headers=bearer(member_key), json=txt2img_body(batch_size=1))
    assert response.status_code == 200, response.text
    body = response.json()
    [image] = body["images"]
    png = decoded(image)
    assert (png.format, png.size) == ("PNG", (64, 64))
    assert png.info["parameters"].startswith(
        "a red fox\nNegative prompt: blur\nSteps: 4, Sampler: Euler a, CFG scale: 6, Seed: 1234, Size: 64x64"
    )
    info = json.loads(body["info"])
    assert set(info) >= INFO_KEYS
    assert (info["all_seeds"], info["sampler_name"], info["sd_model_name"]) == ([1234], "Euler a", "tiny")
    assert info["infotexts"] == [png.info["parameters"]]
    [job_id] = info["job_ids"]
    files = await service.scheduler.get(job_id)
    assert await debits(service, job_id) == [-files.cost]
    assert await balance(service) == before - files.cost
    assert body["parameters"]["styles"] == ["None"]
    assert body["parameters"]["override_settings"] == {"CLIP_stop_at_last_layers": 1}
    assert (body["parameters"]["batch_size"], body["parameters"]["n_iter"]) == (1, 1)


@pytest.mark.slow
async def test_batch_size_two_times_n_iter_two(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """Two jobs of two images, seeds counted on over the whole request as A1111 does, each job charged once."""
    before = await balance(service)
    response = await client.post(
        "/sdapi/v1/txt2img", headers=bearer(member_key), json=txt2img_body(seed=500, batch_size=2, n_iter=2)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    info = json.loads(body["info"])
    assert len(body["images"]) == 4
    assert info["all_seeds"] == [500, 501, 502, 503]
    texts = [decoded(image).info["parameters"] for image in body["images"]]
    assert all(f"Seed: {seed}," in text for seed, text in zip(info["all_seeds"], texts, strict=True))
    assert len(info["job_ids"]) == 2
    costs = [(await service.scheduler.get(job_id)).cost for job_id in info["job_ids"]]
    assert [await debits(service, job_id) for job_id in info["job_ids"]] == [[-cost] for cost in costs]
    assert await balance(service) == before - sum(costs)


@pytest.mark.slow
async def test_a_client_session_replays(client: httpx.AsyncClient, service: ImagineService, member_key: str) -> None:
    """What an AIYA-style client sends, in order, with HTTP Basic auth: options, checkpoints, a model switch, a
    txt2img full of fields this server ignores, png-info on the image it got, then img2img from that image as a
    data URI."""
    headers = basic(member_key)
    options = await client.get("/sdapi/v1/options", headers=headers)
    assert options.status_code == 200
    models = await client.get("/sdapi/v1/sd-models", headers=headers)
    title = models.json()[0]["title"]
    assert (await client.post("/sdapi/v1/options", headers=headers, json={"sd_model_checkpoint": title})).is_success
    payload = {
        "prompt": "a lighthouse at dusk",
        "negative_prompt": "lowres, (worst quality:1.4)",
        "steps": 4,
        "width": 64,
        "height": 64,
        "cfg_scale": 7.0,
        "sampler_index": "DPM++ 2M Karras",
        "seed": 424242,
        "seed_resize_from_h": 0,
        "seed_resize_from_w": 0,
        "denoising_strength": None,
        "n_iter": 1,
        "styles": ["None"],
        "override_settings": {"CLIP_stop_at_last_layers": 1, "sd_model_checkpoint": title},
        "restore_faces": False,
        "enable_hr": False,
    }
    generated = await client.post("/sdapi/v1/txt2img", headers=headers, json=payload)
    assert generated.status_code == 200, generated.text
    image = generated.json()["images"][0]
    assert json.loads(generated.json()["info"])["sampler_name"] == "DPM++ 2M Karras"
    described = await client.post(
        "/sdapi/v1/png-info", headers=headers, json={"image": "data:image/png;base64," + image}
    )
    assert described.status_code == 200
    parsed = described.json()["parameters"]
    assert (parsed["Prompt"], parsed["Negative prompt"]) == ("a lighthouse at dusk", "lowres, (worst quality:1.4)")
    assert (parsed["Seed"], parsed["Sampler"], parsed["Model"]) == ("424242", "DPM++ 2M Karras", "tiny")
    redrawn = await client.post(
        "/sdapi/v1/img2img",
        headers=headers,
        json={**payload, "init_images": ["data:image/png;base64," + image], "denoising_strength": 0.5},
    )
    assert redrawn.status_code == 200, redrawn.text
    info = json.loads(redrawn.json()["info"])
    assert info["denoising_strength"] == 0.5
    assert "Denoising strength: 0.5" in decoded(redrawn.json()["images"][0]).info["parameters"]
    assert redrawn.json()["parameters"]["init_images"] is None


@pytest.mark.slow
async def test_img2img_with_a_mask_inpaints(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """A mask makes the job an inpaint of its white part."""
    source = base64.b64encode(png_of(Image.new("RGB", (64, 64), "navy"))).decode()
    mask = base64.b64encode(png_of(Image.new("L", (64, 64), 255))).decode()
    response = await client.post(
        "/sdapi/v1/img2img",
        headers=bearer(member_key),
        json=txt2img_body(init_images=[source], mask=mask, denoising_strength=0.9),
    )
    assert response.status_code == 200, response.text
    [job_id] = json.loads(response.json()["info"])["job_ids"]
    job = await service.scheduler.get(job_id)
    assert (job.kind.value, job.params.strength) == ("inpaint", 0.9)


@pytest.mark.slow
async def test_progress_during_a_render(client: httpx.AsyncClient, member_key: str) -> None:
    """While a txt2img waits, /progress tells its steps, time left and preview; the request then answers."""
    headers = bearer(member_key)
    render = asyncio.create_task(client.post("/sdapi/v1/txt2img", headers=headers, json=txt2img_body(steps=30)))
    seen: list[dict[str, Any]] = []
    while not render.done():
        progress = (await client.get("/sdapi/v1/progress", headers=headers)).json()
        if progress["progress"] > 0:
            seen.append(progress)
        await asyncio.sleep(0.02)
    assert (await render).status_code == 200
    assert seen, "no progress was seen while the job rendered"
    assert all(0 < item["progress"] <= 1 and item["state"]["sampling_steps"] == 30 for item in seen)
    assert all(item["state"]["job"] == "imagine" and item["state"]["job_id"] for item in seen)
    previews = [item["current_image"] for item in seen if item["current_image"]]
    assert previews, "no preview was seen while the job rendered"
    assert decoded(previews[-1]).format == "JPEG"


@pytest.mark.slow
async def test_interrupt_stops_the_waiting_request_and_refunds(
    client: httpx.AsyncClient, service: ImagineService, member_key: str
) -> None:
    """An interrupt while the first of two jobs renders cancels both; the request answers with what finished (409
    when nothing did), and only finished jobs stay charged."""
    headers = bearer(member_key)
    before = await balance(service)
    render = asyncio.create_task(
        client.post("/sdapi/v1/txt2img", headers=headers, json=txt2img_body(steps=40, n_iter=2))
    )
    while True:
        progress = (await client.get("/sdapi/v1/progress", headers=headers)).json()
        if progress["state"]["job_id"] or render.done():
            break
        await asyncio.sleep(0.02)
    stopped = (await client.post("/sdapi/v1/interrupt", headers=headers)).json()["cancelled"]
    response = await render
    assert stopped
    if response.status_code == 200:  # the first job finished between the last look and the interrupt
        finished = json.loads(response.json()["info"])["job_ids"]
    else:
        assert (response.status_code, response.json()["error"]["code"]) == (409, "job_cancelled")
        finished = []
    assert len(finished) + len(stopped) == 2
    kept = [(await service.scheduler.get(job_id)).cost for job_id in finished]
    assert await balance(service) == before - sum(kept)
