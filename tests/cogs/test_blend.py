"""/blend and /imagine's image prompts through simcord's in-memory Discord, the real bot and the session's engine
(the tiny model with its tiny IP-Adapter): the grid, the cost shown, the buttons that keep the images, and refusals
that are private and cost nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import simcord
from PIL import Image

from bot.jobs import RenderParams
from config.settings import Settings
from tests.conftest import make_settings, posts, scene, wait_until


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """The session's data folder and engine; members may also pick tiny-turbo (an SD2 model: no adapter)."""
    return make_settings(data_dir, database_path=tmp_path / "imagine.db", enabled_models=["tiny", "tiny-turbo"])


def _png(color: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


async def _jobs(env: simcord.Env) -> list[tuple[str, str, RenderParams]]:
    rows = await env.bot.service.store.fetch_all("SELECT kind, status, params FROM jobs ORDER BY id")
    return [(row[0], row[1], RenderParams.from_json(row[2])) for row in rows]


async def _debits(env: simcord.Env) -> int:
    return int(await env.bot.service.store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'"))


@pytest.mark.slow
async def test_blend_posts_a_grid_of_its_images_and_its_buttons_keep_them(discord_env: simcord.Env) -> None:
    """Two attachments become one blend job (its cost in the queued message), a 2×2 grid of the chosen shape, and
    a reroll that renders the same two images again."""
    _guild, channel, ada = scene(discord_env, "ada")
    result = await ada.slash(
        channel,
        "blend",
        image1=("a.png", _png("red")),
        image2=("b.png", _png("blue", (48, 48))),
        dimensions="landscape",
    )

    assert result.response is not None and result.ephemeral
    assert "blend of 2 images (landscape)" in result.response.content
    assert "— queued" in result.response.content
    [(kind, _status, params)] = await _jobs(discord_env)
    cost = -int(await discord_env.bot.service.store.fetch_value("SELECT delta FROM ledger WHERE kind = 'debit'"))
    assert cost > 0 and f"cost {cost} credits" in result.response.content  # shown as it is charged
    assert kind == "blend" and params.prompt == "" and params.ip_adapter == "tiny-ip-adapter"
    assert len(params.image_prompts) == 2 and all(path.endswith(".png") for path in params.image_prompts)
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the blend grid")
    [post] = posts(channel)
    with Image.open(io.BytesIO(await post.attachments[0].read())) as grid:
        assert grid.size == (144, 96)  # 2×2 of 72×48: landscape 3:2 on the tiny model
    assert [button.label for button in post.components[0].children[:4]] == ["U1", "U2", "U3", "U4"]

    reroll = next(child for row in post.components for child in row.children if str(child.emoji) == "🔄")
    clicked = await ada.click(post, custom_id=reroll.custom_id)
    assert clicked.response is not None and "(Reroll) — queued" in clicked.response.content
    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="the reroll grid")
    jobs = await _jobs(discord_env)
    assert [(kind, status) for kind, status, _params in jobs] == [("blend", "completed"), ("reroll", "completed")]
    assert jobs[1][2].image_prompts == params.image_prompts
    assert jobs[1][2].seed != params.seed


@pytest.mark.slow
async def test_imagine_with_an_image_prompt_and_iw(discord_env: simcord.Env) -> None:
    """/imagine's image_prompt attachment prompts the grid at --iw; the prompt text keeps its words."""
    _guild, channel, bea = scene(discord_env, "bea")

    result = await bea.slash(
        channel, "imagine", prompt="a lighthouse --iw 0.6 --seed 5", image_prompt=("ref.png", _png("green"))
    )

    assert result.response is not None and "— queued" in result.response.content
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid")
    [(kind, status, params)] = await _jobs(discord_env)
    assert (kind, status, params.prompt, params.image_weight) == ("imagine", "completed", "a lighthouse", 0.6)
    [stored] = params.image_prompts
    assert stored.startswith(str(discord_env.bot.settings.data_dir / "uploads"))


@pytest.mark.parametrize(
    ("command", "options", "fragment"),
    [
        (
            "blend",
            {"image1": ("a.png", _png("red")), "image2": ("b.png", b"not an image")},
            "not an image this bot can read",
        ),
        (
            "blend",
            {"image1": ("a.png", _png("red")), "image2": ("b.png", _png("red", (16, 16)))},
            "each side must be at least 32 pixels",
        ),
        ("imagine", {"prompt": "https://example.com/cat.png a cat"}, "example.com is not Discord's file server"),
        ("imagine", {"prompt": "http://169.254.169.254/latest a cat"}, "only https:// links"),
        ("imagine", {"prompt": "a cat --iw 1.5"}, "--iw needs an image prompt"),
        (
            "imagine",
            {"prompt": "a cat --iw 9", "image_prompt": ("r.png", _png("red"))},
            "--iw X with X a number from 0 to 2",
        ),
        (
            "imagine",
            {"prompt": "a cat --model tiny-turbo", "image_prompt": ("r.png", _png("red"))},
            "no IP-Adapter for the sd2 family is configured",
        ),
    ],
)
async def test_refusals_are_private_and_cost_nothing(
    discord_env: simcord.Env, command: str, options: dict, fragment: str
) -> None:
    """Bad shapes, bad uploads, links that are not Discord's (never fetched), --iw without an image, a model with no
    adapter: a private message, no job, no charge, no stored upload."""
    settings = discord_env.bot.settings
    _guild, channel, cy = scene(discord_env, "cy")
    uploads = settings.data_dir / "uploads"
    before = set(uploads.glob("*")) if uploads.is_dir() else set()

    result = await cy.slash(channel, command, **options)

    assert result.ephemeral
    text = result.response.content if result.response else result.followups[-1].content
    assert fragment in text
    assert await _jobs(discord_env) == []
    assert await _debits(discord_env) == 0
    after = set(uploads.glob("*")) if uploads.is_dir() else set()
    assert after == before
