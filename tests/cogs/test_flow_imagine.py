"""/imagine and its buttons on SD3.5 and FLUX.1 models, as a member uses them: the real bot on simcord's in-memory
Discord and a real engine process of this module's own, started on the tiny FLUX.1 with the tiny SD3 beside it. A
flux grid carries the flow sampler and the model's guidance, every button on it and on its upscale renders on the
flow model, an attached image is img2img there, and what the family cannot do (in a typed prompt, a sweep's prompt
values, an attachment) is refused privately before anything is charged; a result button of an older grid whose LoRA
is now declared for another family is refused the same way; the sampler autocomplete offers the model's samplers."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import discord
import pytest
import simcord
from PIL import Image

from bot.discord_surface.discord_bot import ImagineBot
from bot.running.engine_supervisor import EngineSupervisor
from config.model_registry import BUILTIN_MODELS
from config.policy import DEFAULT_TIERS
from config.settings import Settings
from engine.metadata import read_parameters
from engine.samplers import SAMPLERS
from tests.cogs.test_imagine import UPSCALE_FOLLOW_UPS
from tests.conftest import make_settings, posts, release, scene, wait_until
from tests.flow_models import SCHNELL, module_engine

FLUX_GUIDANCE = BUILTIN_MODELS["tiny-flux"].cfg
SD3_CFG = BUILTIN_MODELS["tiny-sd3"].cfg


def _lora_file(data_dir: Path) -> Path:
    """Where the module's FLUX.1 LoRA ``grain`` lies (built by the test that renders with it)."""
    return data_dir / "loras" / "flux" / "pytorch_lora_weights.safetensors"


def _flow_settings(data_dir: Path, database: Path, *, grain_family: str = "") -> Settings:
    """Step-priced settings (one credit per 64×64 image step) on the tiny FLUX.1, with tiny SD3, a schnell-like
    FLUX.1 and the tiny SD1.5 enabled, two models loaded at once, the LoRA ``grain`` (family ``grain_family``, '' =
    not said) and a LoRA declared for SDXL."""
    sdxl_lora = data_dir / "loras" / "sdxl-grain.safetensors"
    sdxl_lora.parent.mkdir(parents=True, exist_ok=True)
    sdxl_lora.touch()
    return make_settings(
        data_dir,
        database_path=database,
        model="tiny-flux",
        models={"tiny-schnell": SCHNELL},
        max_loaded_models=2,
        credits={"unit_pixels": 64 * 64, "unit_steps": 1},
        tiers={**DEFAULT_TIERS, "free": DEFAULT_TIERS["free"].model_copy(update={"allowance": 1000})},
        enabled_models=["tiny-flux", "tiny-sd3", "tiny-schnell", "tiny"],
        loras={
            "grain": {"path": str(_lora_file(data_dir)), **({"family": grain_family} if grain_family else {})},
            "sdxl-grain": {"path": str(sdxl_lora), "family": "sdxl"},
        },
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's data folder, shared with its engine (images must land under it)."""
    return tmp_path_factory.mktemp("flow-imagine")


@pytest.fixture(scope="module")
def engine(data_dir: Path) -> Iterator[EngineSupervisor]:
    """One engine for the module: FLUX.1 loaded at start-up, SD3 beside it (two models kept loaded)."""
    yield from module_engine(_flow_settings(data_dir, data_dir / "engine.db"))


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """The module's flow settings with a database of this test's own."""
    return _flow_settings(data_dir, tmp_path / "imagine.db")


def _png(size: tuple[int, int], color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def _labels(post: discord.Message) -> list[str]:
    return [child.label or str(child.emoji) for row in post.components for child in row.children]


def _custom_id(post: discord.Message, name: str) -> str:
    for row in post.components:
        for child in row.children:
            if (child.label or str(child.emoji)) == name:
                return str(child.custom_id)
    raise AssertionError(f"no button {name!r} on the post")


async def _finished(env: simcord.Env) -> list[tuple[str, str, int]]:
    """Every job's kind, status and number of images written, in order."""
    rows = await env.bot.service.store.fetch_all(
        "SELECT kind, status, (SELECT COUNT(*) FROM results WHERE results.job_id = jobs.id) FROM jobs ORDER BY id"
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def _count(env: simcord.Env, sql: str) -> int:
    return int(await env.bot.service.store.fetch_value(sql))


@pytest.mark.slow
async def test_a_flux_grid_carries_the_flow_sampler_the_models_guidance_and_its_price(
    discord_env: simcord.Env,
) -> None:
    """A 3:2 grid of four images with U/🔄/V buttons; the job samples with euler at FLUX.1's guidance, the files name
    the model, and the debit is the price the response announced."""
    _guild, channel, ada = scene(discord_env, "ada")

    result = await ada.slash(channel, "imagine", prompt="a red fox --model tiny-flux --ar 3:2 --seed 11")

    assert result.response is not None
    cost = re.search(r"cost (\d+) credits", result.response.content)
    assert cost is not None, result.response.content
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the flux grid")
    [post] = posts(channel)
    assert _labels(post) == ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]
    with Image.open(io.BytesIO(await post.attachments[0].read())) as grid:
        assert grid.size == (144, 96)  # 2×2 of 72×48
    store = discord_env.bot.service.store
    params = json.loads(await store.fetch_value("SELECT params FROM jobs"))
    assert (params["model"], params["sampler"], params["cfg"], params["width"], params["height"]) == (
        "tiny-flux",
        "euler",
        FLUX_GUIDANCE,
        72,
        48,
    )
    paths = [row[0] for row in await store.fetch_all("SELECT path FROM results ORDER BY idx")]
    assert len(paths) == 4
    for path in paths:
        text = read_parameters(Path(path).read_bytes())
        assert text is not None
        assert f"Sampler: Euler, CFG scale: 1, Distilled CFG Scale: {FLUX_GUIDANCE:g}, " in text  # as Forge writes it
        assert "Model: tiny-flux" in text
    assert await store.fetch_value("SELECT delta FROM ledger WHERE kind = 'debit'") == -int(cost.group(1))


@pytest.mark.slow
async def test_every_button_of_a_flux_grid_and_its_upscale_renders_on_the_flow_model(
    discord_env: simcord.Env,
) -> None:
    """U1, then each of the upscale's buttons (vary strong/subtle, zoom out, pan), and V1 and 🔄 on the grid: each
    queues its job, and every job finishes on tiny-flux with its images."""
    _guild, channel, ola = scene(discord_env, "ola")
    await discord_env.bot.service.ledger.set_tier(ola.id, "supporter", actor="test")  # room for the ten jobs
    await ola.slash(channel, "imagine", prompt="a pier --model tiny-flux --seed 5")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid")
    grid = posts(channel)[0]
    await ola.click(grid, label="U1")
    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="the upscale")
    upscale = posts(channel)[-1]
    expected = UPSCALE_FOLLOW_UPS
    assert _labels(upscale) == list(expected)
    for name, says in expected.items():
        clicked = await ola.click(upscale, custom_id=_custom_id(upscale, name))
        assert clicked.response is not None, name
        assert f"({says}) — queued" in clicked.response.content, name
    for name, says in {"V1": "Variation of image 1", "🔄": "Reroll"}.items():
        clicked = await ola.click(grid, custom_id=_custom_id(grid, name))
        assert clicked.response is not None, name
        assert f"({says}) — queued" in clicked.response.content, name

    await wait_until(discord_env, lambda: len(posts(channel)) == 12, limit_s=300, what="every follow-up's post")
    finished = await _finished(discord_env)
    assert [kind for kind, _status, _images in finished] == ["imagine", "upscale"] + ["variation"] * 2 + [
        "zoom"
    ] * 2 + ["pan"] * 4 + ["variation", "reroll"]
    assert [(status, images) for _kind, status, images in finished] == [("completed", 4), ("completed", 1)] + [
        ("completed", 4)
    ] * 10
    rows = await discord_env.bot.service.store.fetch_all("SELECT params FROM jobs ORDER BY id")
    params = [json.loads(row[0]) for row in rows]
    assert {(item["model"], item["sampler"], item["cfg"]) for item in params} == {("tiny-flux", "euler", FLUX_GUIDANCE)}
    assert [item["strength"] for item in params[2:4]] == [0.35, 0.65]  # subtle, strong


@pytest.mark.slow
async def test_a_negative_prompt_on_sd3_reaches_its_images(discord_env: simcord.Env) -> None:
    """SD3.5 has real CFG: `--no blur` is its negative prompt, and its files say so."""
    _guild, channel, sol = scene(discord_env, "sol")

    result = await sol.slash(channel, "imagine", prompt="a red fox --model tiny-sd3 --no blur --seed 3")

    assert result.response is not None and "queued" in result.response.content
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the sd3 grid")
    assert await _finished(discord_env) == [("imagine", "completed", 4)]
    store = discord_env.bot.service.store
    params = json.loads(await store.fetch_value("SELECT params FROM jobs"))
    assert (params["model"], params["negative_prompt"], params["cfg"], params["sampler"]) == (
        "tiny-sd3",
        "blur",
        SD3_CFG,
        "euler",
    )
    for [path] in await store.fetch_all("SELECT path FROM results"):
        text = read_parameters(Path(path).read_bytes())
        assert text is not None and "\nNegative prompt: blur\n" in text and "Model: tiny-sd3" in text


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("a red fox --model tiny-flux --no blur", "`--no` has no effect on model `tiny-flux`"),
        ("a red fox --model tiny-flux --tile", "`--tile` does not work on model `tiny-flux` (flux)"),
        ("a (red:1.2) fox --model tiny-flux", "prompt weights such as `(word:1.2)` or `[word]` do not apply"),
        ("a red fox --model tiny-flux --chaos 50", "`--chaos` varies the CFG scale, and model `tiny-flux` (flux)"),
        (
            "a " * 513 + "--model tiny-flux",
            "it reads at most 512 T5 tokens and yours is 514 tokens; shorten the prompt",
        ),
        (
            "a lighthouse " + "Überraschungsei" * 40 + " --model tiny-flux",
            "at most 512 T5 tokens and yours is 613 tokens;",
        ),
        ("a red fox <lora:sdxl-grain:0.5> --model tiny-flux", "LoRA `sdxl-grain` is for sdxl models"),
        ("a red fox --model tiny-schnell --cfg 3", "`--cfg` does nothing on model `tiny-schnell`"),
    ],
    ids=["no", "tile", "weights", "chaos", "long-prompt", "few-words-many-tokens", "sdxl-lora", "schnell-cfg"],
)
async def test_what_flux_cannot_do_is_refused_privately_without_a_charge(
    discord_env: simcord.Env, engine: EngineSupervisor, prompt: str, fragment: str
) -> None:
    """An ephemeral error naming what to change; no job row, no debit. T5 tokens are counted exactly once the
    model's files are on disk (the engine has built the tiny FLUX.1 when it is ready)."""
    await engine.wait_ready()
    _guild, channel, bo = scene(discord_env, "bo")

    result = await bo.slash(channel, "imagine", prompt=prompt)

    assert result.ephemeral
    assert result.response is not None
    assert fragment in result.response.content
    assert await _count(discord_env, "SELECT COUNT(*) FROM jobs") == 0
    assert await _count(discord_env, "SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0


@pytest.mark.slow
async def test_an_attached_image_on_flux_is_img2img(discord_env: simcord.Env) -> None:
    """`/imagine` with an image and `--model tiny-flux` renders img2img on FLUX.1 from the upload."""
    _guild, channel, jo = scene(discord_env, "jo")

    result = await jo.slash(
        channel,
        "imagine",
        prompt="a red fox --model tiny-flux --seed 2",
        image=("photo.png", _png((96, 64), "red")),
        strength=0.6,
    )

    assert result.response is not None
    assert "(From your image) — queued" in result.response.content
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the img2img grid")
    assert await _finished(discord_env) == [("img2img", "completed", 4)]
    params = json.loads(await discord_env.bot.service.store.fetch_value("SELECT params FROM jobs"))
    assert (params["model"], params["sampler"], params["strength"]) == ("tiny-flux", "euler", 0.6)
    assert params["init_image"]


@pytest.mark.slow
async def test_a_button_on_a_grid_whose_lora_is_now_for_another_family_is_refused_before_charging(
    discord_env: simcord.Env, settings: Settings, engine: EngineSupervisor, data_dir: Path, tmp_path: Path
) -> None:
    """A grid made with `<lora:grain:0.5>` on FLUX.1 when `grain` said no family; the owner then declares it an SDXL
    LoRA and restarts. V1, U1 and 🔄 on that grid are refused privately with the LoRA family message, as /imagine
    refuses it: no new job, no second debit."""
    from engine.tiny import ensure_tiny_model
    from tests.builders.tiny_flow_lora import build_tiny_flow_lora

    build_tiny_flow_lora(ensure_tiny_model("flux", data_dir / "models"), "flux", _lora_file(data_dir).parent)
    _guild, channel, lu = scene(discord_env, "lu")
    made = await lu.slash(channel, "imagine", prompt="a red fox <lora:grain:0.5> --model tiny-flux --seed 4")
    assert made.response is not None and "queued" in made.response.content
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid with the LoRA")
    assert await _finished(discord_env) == [("imagine", "completed", 4)]
    [grid] = posts(channel)

    await release(discord_env.bot)
    declared = _flow_settings(data_dir, settings.database_file, grain_family="sdxl")
    restarted = ImagineBot(declared, engine=engine)
    restarted.external_wait = discord_env.external_wait
    await discord_env.restart_bot(restarted)

    for name in ("V1", "U1", "🔄"):
        clicked = await lu.click(grid, custom_id=_custom_id(grid, name))
        assert clicked.ephemeral, name
        assert clicked.response is not None, name
        assert "LoRA `grain` is for sdxl models and model `tiny-flux` is flux" in clicked.response.content, name
    assert await _count(discord_env, "SELECT COUNT(*) FROM jobs") == 1
    assert await _count(discord_env, "SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 1


@pytest.mark.parametrize(
    ("command", "options", "fragment"),
    [
        (
            "imagine",
            {"prompt": "a red fox --model tiny-flux", "control": ("edges.png", _png((64, 64), "white"))},
            "ControlNets do not work with model `tiny-flux`",
        ),
        (
            "imagine",
            {"prompt": "a red fox --model tiny-flux", "image_prompt": ("look.png", _png((64, 64), "blue"))},
            "image prompts do not work with model `tiny-flux`",
        ),
        (
            "blend",
            {"image1": ("a.png", _png((64, 64), "red")), "image2": ("b.png", _png((64, 64), "blue"))},
            "image prompts do not work with model `tiny-flux` (flux) yet",
        ),
        ("sweep", {"prompt": "a lamp --model tiny-flux", "x": "sampler=euler,euler_a"}, "use some of: euler"),
    ],
    ids=["control", "image-prompt", "blend", "sampler-sweep"],
)
async def test_images_flux_cannot_use_are_refused_privately_without_a_charge(
    discord_env: simcord.Env, command: str, options: dict[str, object], fragment: str
) -> None:
    """A control image, an image prompt, /blend (the server's default model is FLUX.1) and a sweep of samplers it
    has not: an ephemeral error naming what to change; no job row, no debit, no stored upload."""
    _guild, channel, cy = scene(discord_env, "cy")
    uploads = discord_env.bot.settings.data_dir / "uploads"
    before = set(uploads.glob("*"))

    result = await cy.slash(channel, command, **options)

    assert result.ephemeral
    text = result.response.content if result.response else result.followups[-1].content
    assert fragment in text
    assert await _count(discord_env, "SELECT COUNT(*) FROM jobs") == 0
    assert await _count(discord_env, "SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0
    assert set(uploads.glob("*")) == before  # no upload kept for a refused request


@pytest.mark.slow
async def test_edit_a_guidance_sweep_and_a_schnell_grid_render_on_flux(discord_env: simcord.Env) -> None:
    """/edit repaints on FLUX.1, /sweep over its guidance posts one grid, and the schnell-like model renders without
    guidance; each finishes with its images."""
    _guild, channel, kim = scene(discord_env, "kim")
    await discord_env.bot.service.ledger.set_tier(kim.id, "supporter", actor="test")

    edited = await kim.slash(
        channel,
        "edit",
        image=("in.png", _png((64, 64), "blue")),
        mask=("mask.png", _png((64, 64), "white")),
        prompt="a yellow sun --model tiny-flux --seed 1",
    )
    swept = await kim.slash(channel, "sweep", prompt="a lamp --model tiny-flux --seed 1", x="cfg=2,5")
    schnell = await kim.slash(channel, "imagine", prompt="a red fox --model tiny-schnell --seed 1")
    for result, says in ((edited, "(Edit) — queued"), (swept, "(Sweep) — queued"), (schnell, "— queued")):
        assert result.response is not None and says in result.response.content, result.response

    await wait_until(discord_env, lambda: len(posts(channel)) == 3, what="the edit, the sweep and the schnell grid")
    assert await _finished(discord_env) == [
        ("inpaint", "completed", 4),
        ("sweep", "completed", 2),
        ("imagine", "completed", 4),
    ]
    store = discord_env.bot.service.store
    params = [json.loads(row[0]) for row in await store.fetch_all("SELECT params FROM jobs ORDER BY id")]
    assert [(item["model"], item["sampler"]) for item in params] == [("tiny-flux", "euler")] * 2 + [
        ("tiny-schnell", "euler")
    ]
    assert params[2]["cfg"] == 0.0
    [path] = [
        row[0]
        for row in await store.fetch_all(
            "SELECT path FROM results WHERE job_id = (SELECT MAX(id) FROM jobs) AND idx = 0"
        )
    ]
    text = read_parameters(Path(path).read_bytes())
    assert text is not None and "Model: tiny-schnell" in text and "Distilled CFG" not in text


@pytest.mark.slow
async def test_stop_multi_prompts_and_chaos_render_on_the_flow_models(discord_env: simcord.Env) -> None:
    """`--stop 50` and a multi-prompt (`::` parts blended) on FLUX.1, `--chaos 50` on SD3 (which has real CFG to
    vary): each finishes with four images."""
    _guild, channel, rue = scene(discord_env, "rue")
    prompts = (
        "a red fox --model tiny-flux --stop 50 --seed 1",
        "a red fox:: a snowy field::2 --model tiny-flux --seed 1",
        "a red fox --model tiny-sd3 --chaos 50 --seed 1",
    )

    for prompt in prompts:
        result = await rue.slash(channel, "imagine", prompt=prompt)
        assert result.response is not None and "queued" in result.response.content, prompt

    await wait_until(discord_env, lambda: len(posts(channel)) == 3, what="the three grids")
    assert await _finished(discord_env) == [("imagine", "completed", 4)] * 3
    rows = await discord_env.bot.service.store.fetch_all("SELECT params FROM jobs ORDER BY id")
    params = [json.loads(row[0]) for row in rows]
    assert [(item["model"], item["stop"], item["chaos"]) for item in params] == [
        ("tiny-flux", 50, 0),
        ("tiny-flux", 100, 0),
        ("tiny-sd3", 100, 50),
    ]
    assert [list(part) for part in params[1]["weighted_prompts"]] == [["a red fox", 1.0], ["a snowy field", 2.0]]


@pytest.mark.parametrize(
    ("prompt", "options", "preferred", "offered"),
    [
        ("x", {"model": "tiny-flux"}, None, ["euler"]),
        ("a fox --model tiny-sd3", {}, None, ["euler"]),
        ("a fox", {}, None, ["euler"]),  # the server's default model is FLUX.1
        ("a fox", {}, "tiny", sorted(SAMPLERS)),  # the member's /settings model takes every sampler
        ("a fox --model tiny", {}, None, sorted(SAMPLERS)),
        ("a fox", {"model": "tiny"}, None, sorted(SAMPLERS)),
        ("a fox", {"model": "nope"}, None, sorted(SAMPLERS)),  # not a model: its error comes with the command
    ],
    ids=["option", "prompt-flag", "server-default", "settings-model", "sd15-flag", "sd15-option", "unknown"],
)
async def test_the_sampler_autocomplete_offers_the_samplers_of_the_model_the_request_renders_on(
    discord_env: simcord.Env, prompt: str, options: dict[str, str], preferred: str | None, offered: list[str]
) -> None:
    """The model is the `model` option, else the prompt's --model, else the member's /settings model, else the
    server's: on FLUX.1 and SD3 only euler is offered (what they would refuse is not), on SD1.5 every sampler."""
    _guild, channel, hana = scene(discord_env, "hana")
    if preferred is not None:
        await discord_env.bot.service.preferences.update(hana.id, model=preferred)

    choices = await hana.autocomplete(channel, "imagine", "sampler", "", prompt=prompt, **options)

    assert sorted(choice["value"] for choice in choices) == offered


@pytest.mark.parametrize(
    ("axis", "fragment"),
    [
        ("prompt=red,(red:1.3)", "prompt weights such as `(word:1.2)` or `[word]` do not apply to model `tiny-flux`"),
        ("prompt=red,<lora:sdxl-grain:0.5>", "LoRA `sdxl-grain` is for sdxl models and model `tiny-flux` is flux"),
    ],
    ids=["weights", "sdxl-lora"],
)
async def test_a_sweep_prompt_flux_cannot_take_is_refused_privately_without_a_charge(
    discord_env: simcord.Env, axis: str, fragment: str
) -> None:
    """A `prompt=` axis whose value brings in what FLUX.1 refuses in a typed prompt is refused the same way, before
    anything is charged: no job row, no debit."""
    _guild, channel, vi = scene(discord_env, "vi")

    result = await vi.slash(channel, "sweep", prompt="a red fox --model tiny-flux --seed 1", x=axis)

    assert result.ephemeral
    assert result.response is not None
    assert fragment in result.response.content
    assert await _count(discord_env, "SELECT COUNT(*) FROM jobs") == 0
    assert await _count(discord_env, "SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0
