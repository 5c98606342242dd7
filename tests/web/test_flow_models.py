"""SD3.5 and FLUX.1 through the web's doors, as an A1111 client and a native API client use them: the real app,
service and an engine process holding the tiny SD3 and FLUX.1 models. A1111 clients send a CFG scale and a negative
prompt with every request; on FLUX.1 (no classifier-free guidance) they are ignored as Forge ignores them, and
Forge's ``distilled_cfg_scale`` is the guidance."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, expect

from bot.core import ImagineService
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from tests.conftest import make_settings
from tests.flow_models import SCHNELL, module_engine
from tests.web.native import API, balance, create, wait_for_job
from tests.web.test_a1111_api import CLIENT_FIELDS, basic, decoded, job_count
from tests.web.test_browser import WAIT_MS, PageProblems, shot, signed_in_context

pytestmark = pytest.mark.slow

MODELS = {"tiny-schnell": SCHNELL}
ENABLED = ["tiny-flux", "tiny-sd3", "tiny-schnell"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flow-web")


@pytest.fixture(scope="module")
def engine(data_dir: Path) -> Iterator[EngineSupervisor]:
    """One engine for the module, FLUX.1 loaded at start-up and room for SD3 and the schnell entry beside it."""
    yield from module_engine(make_settings(data_dir, model="tiny-flux", models=MODELS, max_loaded_models=3))


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    return make_settings(
        data_dir,
        model="tiny-flux",
        models=MODELS,
        max_loaded_models=3,
        enabled_models=ENABLED,
        database_path=tmp_path / "imagine.db",
    )


def client_body(model: str, **fields: Any) -> dict[str, Any]:
    """A txt2img request as A1111 clients send it (a negative prompt and a CFG scale included), for ``model``."""
    body: dict[str, Any] = {
        **CLIENT_FIELDS,
        "prompt": "a red fox in the snow",
        "negative_prompt": "lowres, blur",
        "seed": 77,
        "steps": 4,
        "cfg_scale": 7,
        "width": 64,
        "height": 64,
        "batch_size": 2,
        "sampler_name": "Euler",
        "override_settings": {"sd_model_checkpoint": model},
    }
    body.update(fields)
    return body


async def job_params(service: ImagineService) -> dict[str, Any]:
    """The last job's render parameters as stored."""
    params: dict[str, Any] = json.loads(await service.store.fetch_value("SELECT params FROM jobs ORDER BY id DESC"))
    return params


async def test_the_flow_models_are_checkpoints_a1111_clients_can_pick(
    client: httpx.AsyncClient, member_key: str
) -> None:
    """GET /sd-models lists them under the names override_settings takes."""
    listed = (await client.get("/sdapi/v1/sd-models", headers=basic(member_key))).json()
    assert {item["title"] for item in listed} >= set(ENABLED)


async def test_the_models_endpoint_says_what_each_model_takes(client: httpx.AsyncClient, member_key: str) -> None:
    """GET /api/v1/models: FLUX.1-dev's --cfg is a distilled guidance without --no, schnell takes none, SD3.5 a CFG
    scale and --no; each lists only the flow sampler; `yours` follows the member's /settings."""
    models = (await client.get(f"{API}/models", headers=basic(member_key))).json()
    details = {item["name"]: item for item in models["details"]}
    assert [item["name"] for item in models["details"]] == models["models"]
    assert (models["default"], models["yours"]) == ("tiny-flux", "tiny-flux")
    expected = {
        "tiny-flux": ("flux", "distilled", False, 3.5, 10.0),
        "tiny-schnell": ("flux", "none", False, 0.0, 0.0),
        "tiny-sd3": ("sd3", "cfg", True, 4.5, 30.0),
    }
    for name, (family, guidance, negative, cfg, max_cfg) in expected.items():
        item = details[name]
        assert (item["family"], item["guidance"], item["negative_prompt"], item["cfg"], item["max_cfg"]) == (
            family,
            guidance,
            negative,
            cfg,
            max_cfg,
        )
        assert (item["samplers"], item["sampler"]) == (["euler"], "euler")
    assert details["tiny-schnell"]["max_steps"] == 4
    changed = await client.patch(f"{API}/me/preferences", json={"model": "tiny-sd3"}, headers=basic(member_key))
    assert changed.status_code == 200, changed.text
    assert (await client.get(f"{API}/models", headers=basic(member_key))).json()["yours"] == "tiny-sd3"


async def test_an_a1111_client_renders_on_flux_dev_with_its_usual_fields(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """The client's negative prompt and CFG scale 7 do not apply to FLUX.1: the job renders at the model's guidance
    3.5 without a negative prompt, and info, parameters and every PNG say so as Forge writes it."""
    response = await client.post("/sdapi/v1/txt2img", json=client_body("tiny-flux"), headers=basic(member_key))

    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["images"]) == 2
    params = await job_params(service)
    assert (params["model"], params["cfg"], params["negative_prompt"], params["sampler"]) == (
        "tiny-flux",
        3.5,
        "",
        "euler",
    )
    info = json.loads(answer["info"])
    assert (info["cfg_scale"], info["extra_generation_params"]["Distilled CFG Scale"]) == (1.0, 3.5)
    assert (info["negative_prompt"], info["sampler_name"], info["sd_model_name"]) == ("", "Euler", "tiny-flux")
    assert answer["parameters"]["distilled_cfg_scale"] == 3.5
    for text in info["infotexts"]:
        assert "Sampler: Euler, CFG scale: 1, Distilled CFG Scale: 3.5, " in text and "Negative prompt" not in text
    read_back = await client.post("/sdapi/v1/png-info", json={"image": answer["images"][0]}, headers=basic(member_key))
    parsed = read_back.json()["parameters"]
    assert (parsed["CFG scale"], parsed["Distilled CFG Scale"], parsed["Model"]) == ("1", "3.5", "tiny-flux")
    image = decoded(answer["images"][0])
    assert image.size == (64, 64)


async def test_forges_distilled_cfg_scale_is_flux_devs_guidance(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """distilled_cfg_scale 6 (with Forge's CFG scale 1 beside it) renders at guidance 6."""
    body = client_body("tiny-flux", cfg_scale=1, distilled_cfg_scale=6, batch_size=1)
    response = await client.post("/sdapi/v1/txt2img", json=body, headers=basic(member_key))

    assert response.status_code == 200, response.text
    assert (await job_params(service))["cfg"] == 6.0
    assert json.loads(response.json()["info"])["extra_generation_params"]["Distilled CFG Scale"] == 6.0


async def test_flux_schnell_ignores_every_guidance_field(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """FLUX.1-schnell takes no guidance: CFG scale 7 and a distilled CFG scale are not refused, and the job
    renders without guidance; its files say CFG scale 1 and no distilled scale."""
    body = client_body("tiny-schnell", distilled_cfg_scale=3.5, batch_size=1)
    response = await client.post("/sdapi/v1/txt2img", json=body, headers=basic(member_key))

    assert response.status_code == 200, response.text
    assert (await job_params(service))["cfg"] == 0.0
    info = json.loads(response.json()["info"])
    assert info["cfg_scale"] == 1.0 and "Distilled CFG Scale" not in info["extra_generation_params"]
    assert "CFG scale: 1, Seed: " in info["infotexts"][0]


async def test_sd35_takes_the_negative_prompt_and_cfg_scale(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """SD3.5 guides with classifier-free guidance: both fields reach the job and come back as A1111 writes them."""
    body = client_body("tiny-sd3", cfg_scale=5, distilled_cfg_scale=3.5, batch_size=1)
    response = await client.post("/sdapi/v1/txt2img", json=body, headers=basic(member_key))

    assert response.status_code == 200, response.text
    params = await job_params(service)
    assert (params["model"], params["cfg"], params["negative_prompt"]) == ("tiny-sd3", 5.0, "lowres, blur")
    info = json.loads(response.json()["info"])
    assert info["cfg_scale"] == 5.0 and "Distilled CFG Scale" not in info["extra_generation_params"]
    assert "Negative prompt: lowres, blur\nSteps: 4, Sampler: Euler, CFG scale: 5, " in info["infotexts"][0]


async def test_img2img_on_sd35_from_a_data_uri(client: httpx.AsyncClient, member_key: str) -> None:
    """An A1111 img2img request on SD3.5: the init image's size, at the asked strength."""
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 40, 40)).save(buffer, format="PNG")
    body = client_body(
        "tiny-sd3",
        batch_size=1,
        width=96,
        height=64,
        init_images=["data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()],
        denoising_strength=0.6,
    )
    response = await client.post("/sdapi/v1/img2img", json=body, headers=basic(member_key))

    assert response.status_code == 200, response.text
    assert decoded(response.json()["images"][0]).size == (96, 64)
    assert "Denoising strength: 0.6" in json.loads(response.json()["info"])["infotexts"][0]


async def test_a_sampler_flux_does_not_have_is_refused_with_the_one_it_has(
    client: httpx.AsyncClient, member_key: str, service: ImagineService
) -> None:
    """`Euler a` on FLUX.1: 422 naming Euler, no job, nothing charged."""
    before = await balance(client, member_key)
    body = client_body("tiny-flux", sampler_name="Euler a")
    response = await client.post("/sdapi/v1/txt2img", json=body, headers=basic(member_key))

    assert response.status_code == 422
    assert "does not work with model `tiny-flux`; use Euler" in response.json()["error"]["message"]
    assert await job_count(service) == 0
    assert await balance(client, member_key) == before


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("a fox --model tiny-flux --no blur", "`--no` has no effect on model `tiny-flux`"),
        ("a fox --model tiny-flux --chaos 40", "`--chaos` varies the CFG scale"),
        ("a fox, (snow:1.3) --model tiny-sd3", "prompt weights such as `(word:1.2)`"),
        ("a fox --model tiny-schnell --cfg 4", "--cfg"),
        ("a fox --model tiny-sd3 --sampler euler_a", "--sampler euler_a"),
    ],
)
async def test_the_native_api_refuses_what_the_family_cannot_do_before_charging(
    client: httpx.AsyncClient, member_key: str, service: ImagineService, prompt: str, says: str
) -> None:
    """The native API's job creation goes through the same rules as /imagine: 422 naming the flag, nothing charged."""
    before = await balance(client, member_key)
    response = await create(client, member_key, prompt=prompt)

    assert response.status_code == 422, response.text
    assert says in response.json()["error"]["message"]
    assert await job_count(service) == 0
    assert await balance(client, member_key) == before


async def test_a_native_sd35_job_with_a_negative_prompt_completes(client: httpx.AsyncClient, member_key: str) -> None:
    """`--no` on SD3.5 renders at --ar 3:2 in 16-pixel steps, and the finished job's images are served."""
    response = await create(client, member_key, prompt="a fox --model tiny-sd3 --no blur --ar 3:2")
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, member_key, response.json()["jobs"][0]["id"])

    assert job["status"] == "completed", job
    assert job["params"]["negative_prompt"] == "blur"
    image = await client.get(f"{API}/jobs/{job['id']}/images/0", headers=basic(member_key))
    assert image.status_code == 200
    with Image.open(io.BytesIO(image.content)) as png:
        width, height = png.size
    assert width > height


@pytest.mark.parametrize("model", ["tiny-flux", "tiny-sd3"])
async def test_a_flow_grid_follows_up_with_every_button(client: httpx.AsyncClient, member_key: str, model: str) -> None:
    """U2 on a flow grid, then the upscale's variations, zoom and pan: every follow-up renders on the same model."""
    grid = (await create(client, member_key, prompt=f"a lighthouse --model {model}")).json()["jobs"][0]
    assert (await wait_for_job(client, member_key, grid["id"]))["status"] == "completed"
    response = await client.post(
        f"{API}/jobs/{grid['id']}/actions", json={"action": "upscale", "index": 1}, headers=basic(member_key)
    )
    assert response.status_code == 202, response.text
    upscale = await wait_for_job(client, member_key, response.json()["jobs"][0]["id"])
    assert upscale["status"] == "completed", upscale
    follow_ups = [action for action in upscale["actions"] if action.startswith(("vary", "zoom", "pan"))]
    assert {"vary_subtle", "vary_strong", "pan_left"} <= set(follow_ups)
    for action in follow_ups:
        response = await client.post(
            f"{API}/jobs/{upscale['id']}/actions", json={"action": action}, headers=basic(member_key)
        )
        assert response.status_code == 202, (action, response.text)
        done = await wait_for_job(client, member_key, response.json()["jobs"][0]["id"])
        assert done["status"] == "completed", (action, done.get("error"))
        assert done["params"]["model"] == model


async def test_the_web_uis_options_follow_the_chosen_model(browser: Browser, base_url: str, member_key: str) -> None:
    """FLUX.1-dev (the default): only the flow sampler, a distilled guidance, no negative prompt; SD3.5 takes one;
    schnell no guidance; a --model typed in the prompt counts too; a FLUX.1 grid renders from the page."""
    context = await signed_in_context(browser, base_url, member_key, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems = PageProblems(page)
    await page.goto(base_url + "/")
    await page.get_by_text("Options").click()
    model, sampler, negative = page.locator("#opt-model"), page.locator("#opt-sampler"), page.get_by_label("Negative")
    cfg, composed = page.locator("#opt-cfg"), page.locator("#composed")
    await expect(model.locator("option")).to_have_count(1 + len(ENABLED))
    await expect(model.locator("option").first).to_have_text("Default (tiny-flux)")
    await expect(sampler.locator("option")).to_have_text(["Default (euler)", "euler"])
    await expect(negative).to_be_disabled()
    await expect(page.locator("label[for=opt-cfg]")).to_have_text("Guidance (distilled)")
    await expect(cfg).to_have_attribute("placeholder", "default 3.5")
    await shot(page, "20-flux-options")

    await model.select_option("tiny-sd3")
    await expect(negative).to_be_enabled()
    await expect(page.locator("label[for=opt-cfg]")).to_have_text("Guidance (CFG)")
    await negative.fill("blur")
    await page.get_by_label("Prompt", exact=True).fill("a lighthouse")
    await expect(composed).to_have_text("a lighthouse --model tiny-sd3 --no blur")

    await model.select_option("tiny-schnell")
    await expect(cfg).to_be_disabled()
    await expect(negative).to_be_disabled()
    await expect(composed).to_have_text("a lighthouse --model tiny-schnell")
    await page.get_by_label("Prompt", exact=True).fill("a lighthouse --model tiny-sd3")
    await expect(negative).to_be_enabled()
    await expect(composed).to_have_text("a lighthouse --model tiny-sd3 --no blur")

    await model.select_option("")
    await page.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    await expect(composed).to_have_text("a lighthouse at dusk")
    await page.get_by_role("button", name="Imagine").click()
    card = page.locator("article.job").first
    await expect(card).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    await expect(card.locator(".meta")).to_contain_text("tiny-flux")
    await shot(page, "21-flux-grid")
    await context.close()
    assert problems.errors == []


@pytest.mark.parametrize("value", [11, -1, 1e308, "NaN", "Infinity", "7; --steps 999"])
async def test_a_hostile_distilled_cfg_scale_is_refused_before_charging(
    client: httpx.AsyncClient, member_key: str, service: ImagineService, value: object
) -> None:
    """Out of FLUX.1-dev's range, not finite, text smuggling a flag: 422 naming the guidance, no job, no
    charge."""
    before = await balance(client, member_key)
    body = json.dumps(client_body("tiny-flux", distilled_cfg_scale=value)).replace('"NaN"', "NaN")
    response = await client.post(
        "/sdapi/v1/txt2img",
        content=body.replace('"Infinity"', "Infinity"),
        headers={**basic(member_key), "Content-Type": "application/json"},
    )

    assert response.status_code == 422, response.text
    assert "cfg" in response.text.lower()
    assert await job_count(service) == 0
    assert await balance(client, member_key) == before
