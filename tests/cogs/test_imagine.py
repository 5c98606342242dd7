"""/imagine through simcord's in-memory Discord, the real bot, and a real engine process."""

from __future__ import annotations

import io

import pytest
import simcord
from PIL import Image

from bot.requests.custom_ids import parse_custom_id
from engine.metadata import read_parameters
from tests.conftest import posts, release, scene, wait_until

UPSCALE_FOLLOW_UPS = {
    "Vary (Subtle)": "Variation of image 1",
    "Vary (Strong)": "Variation of image 1",
    "Zoom Out 2x": "Zoom out 2x",
    "Zoom Out 1.5x": "Zoom out 1.5x",
    "⬅️": "Pan left",
    "➡️": "Pan right",
    "⬆️": "Pan up",
    "⬇️": "Pan down",
}
"""An upscale's buttons of image 1, by label or emoji, and what each one's reply says."""


async def test_imagine_defers_queues_and_posts_grid_with_buttons(discord_env: simcord.Env) -> None:
    _guild, channel, alice = scene(discord_env, "alice")

    result = await alice.slash(channel, "imagine", prompt="a red fox --ar 3:2 --seed 7")

    assert result.acknowledged
    defers = [r for r in discord_env.http_requests if r.path.endswith("/callback")]
    assert defers and defers[0].json["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert result.response is not None
    assert "queued, position 1 in the fast lane" in result.response.content
    assert "a red fox" in result.response.content

    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid post")

    [post] = posts(channel)
    assert alice.mention in post.content
    [embed] = post.embeds
    assert "**Seed** 7" in embed.description
    assert "**Size** 72×48" in embed.description
    assert embed.image.url.endswith(post.attachments[0].filename)
    [attachment] = post.attachments
    assert attachment.filename.endswith(".jpg")
    data = await attachment.read()
    with Image.open(io.BytesIO(data)) as grid:
        assert (grid.format, grid.size) == ("JPEG", (144, 96))  # 2×2 of 72×48 (3:2, about the tiny model's 64²)
    assert "Seed: 7" in (read_parameters(data) or "")

    rows = post.components
    assert len(rows) == 2
    first = [button.custom_id for button in rows[0].children]
    second = [button.custom_id for button in rows[1].children]
    assert [button.label for button in rows[0].children[:4]] == ["U1", "U2", "U3", "U4"]
    assert [button.label for button in rows[1].children] == ["V1", "V2", "V3", "V4"]
    parsed = [parse_custom_id(custom_id) for custom_id in first + second]
    assert all(item is not None for item in parsed)
    job_ids = {item[1] for item in parsed if item is not None}
    assert len(job_ids) == 1
    assert [item[0].value for item in parsed if item is not None] == ["U"] * 4 + ["R"] + ["V"] * 4
    # The queued message made way for the result.
    assert all("queued" not in message.content for message in channel.history())


async def test_bad_flag_is_an_ephemeral_error_and_queues_nothing(discord_env: simcord.Env) -> None:
    _guild, channel, bob = scene(discord_env, "bob")

    result = await bob.slash(channel, "imagine", prompt="a cat --ar 3:0")

    assert result.ephemeral
    assert not result.deferred
    assert result.response is not None
    assert "--ar W:H" in result.response.content
    bot = discord_env.bot
    assert await bot.service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0


@pytest.mark.slow
async def test_u_button_upscales_and_the_upscale_gets_its_own_buttons(discord_env: simcord.Env) -> None:
    _guild, channel, carol = scene(discord_env, "carol")
    await carol.slash(channel, "imagine", prompt="a lighthouse --seed 3")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid post")
    [post] = posts(channel)

    clicked = await carol.click(post, label="U2")
    assert clicked.response is not None
    assert "(Upscale of image 2) — queued" in clicked.response.content

    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="the upscale")
    upscale = posts(channel)[-1]
    assert "Upscale of image 2" in upscale.content
    with Image.open(io.BytesIO(await upscale.attachments[0].read())) as image:
        assert image.size == (128, 128)  # one 64x64 image at 2x
    labels = [child.label or str(child.emoji) for row in upscale.components for child in row.children]
    assert labels == ["Vary (Subtle)", "Vary (Strong)", "Zoom Out 2x", "Zoom Out 1.5x", "⬅️", "➡️", "⬆️", "⬇️"]

    zoom_on_grid = await carol.click(upscale, label="Zoom Out 2x")
    assert zoom_on_grid.response is not None
    assert "Zoom out 2x" in zoom_on_grid.response.content


@pytest.mark.slow
async def test_buttons_still_work_after_a_restart(discord_env: simcord.Env, settings, engine) -> None:  # type: ignore[no-untyped-def]
    from bot.discord_surface.discord_bot import ImagineBot

    _guild, channel, ivy = scene(discord_env, "ivy")
    await ivy.slash(channel, "imagine", prompt="a tower --seed 4")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid post")
    [post] = posts(channel)

    await release(discord_env.bot)
    fresh = ImagineBot(settings, engine=engine)
    fresh.external_wait = discord_env.external_wait
    await discord_env.restart_bot(fresh)

    clicked = await ivy.click(post, label="V3")
    assert clicked.response is not None
    assert "(Variation of image 3) — queued" in clicked.response.content
    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="the variation grid")
    variation = posts(channel)[-1]
    assert "Variation of image 3" in variation.content


@pytest.mark.slow
async def test_another_member_can_reroll_and_pays_for_it(discord_env: simcord.Env) -> None:
    guild, channel, owner = scene(discord_env, "owner")
    other = guild.add_member(discord_env.create_user("other"))
    await owner.slash(channel, "imagine", prompt="a bridge --seed 9")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid post")
    [post] = posts(channel)

    clicked = await other.click(post, custom_id=_reroll_id(post))
    assert clicked.response is not None
    assert "(Reroll) — queued" in clicked.response.content
    rows = await discord_env.bot.service.store.fetch_all("SELECT user_id, kind, parent_id FROM jobs ORDER BY id")
    assert [(row[0], row[1]) for row in rows] == [(owner.id, "imagine"), (other.id, "reroll")]


def _reroll_id(post) -> str:  # type: ignore[no-untyped-def]
    for row in post.components:
        for child in row.children:
            if child.custom_id and child.custom_id.startswith("ib:R:"):
                return child.custom_id
    raise AssertionError("no reroll button")


@pytest.mark.slow
async def test_results_after_the_token_expired_are_posted_to_the_channel(discord_env: simcord.Env) -> None:
    _guild, channel, night = scene(discord_env, "night")

    engine = discord_env.bot.service.engine
    await engine.wait_ready()
    limit = engine.job_timeout_s
    engine.job_timeout_s = 3600.0  # the virtual clock jumps 14.5 minutes; a loaded machine must not time the job out
    try:
        queued = await night.slash(channel, "imagine", prompt="a night sky --relax --seed 8 --steps 40")
        assert queued.response is not None
        assert "queued" in queued.response.content
        await discord_env.advance_time(14.5 * 60)  # the interaction token expires while the job renders

        await wait_until(discord_env, lambda: bool(posts(channel)), what="the late grid")
    finally:
        engine.job_timeout_s = limit
    [post] = posts(channel)
    assert post.webhook_id is None  # a normal channel message, not an interaction followup
    assert night.mention in post.content


@pytest.mark.slow
async def test_every_upscale_button_queues_its_job(discord_env: simcord.Env) -> None:
    _guild, channel, ola = scene(discord_env, "ola")
    await discord_env.bot.service.ledger.set_tier(ola.id, "supporter", actor="test")  # room for 10 jobs
    await ola.slash(channel, "imagine", prompt="a pier --seed 5")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid")
    await ola.click(posts(channel)[0], label="U1")
    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="the upscale")
    upscale = posts(channel)[-1]
    expected = UPSCALE_FOLLOW_UPS
    for row in upscale.components:
        for button in row.children:
            name = button.label or str(button.emoji)
            clicked = await ola.click(upscale, custom_id=button.custom_id)
            assert clicked.response is not None, name
            assert f"({expected[name]}) — queued" in clicked.response.content, name
    rows = await discord_env.bot.service.store.fetch_all("SELECT kind, params FROM jobs ORDER BY id")
    kinds = [row[0] for row in rows]
    assert kinds[:2] == ["imagine", "upscale"]
    assert sorted(kinds[2:]) == sorted(["variation"] * 2 + ["zoom"] * 2 + ["pan"] * 4)
    assert '"strength": 0.35' in rows[2][1]  # subtle
    assert '"strength": 0.65' in rows[3][1]  # strong


async def test_a_member_cannot_cancel_another_members_job(discord_env: simcord.Env) -> None:
    guild, channel, pat = scene(discord_env, "pat")
    quinn = guild.add_member(discord_env.create_user("quinn"))
    await pat.slash(channel, "imagine", prompt="a bell --steps 40")
    [job_id] = [row[0] for row in await discord_env.bot.service.store.fetch_all("SELECT id FROM jobs")]

    refused = await quinn.slash(channel, "cancel", job=job_id)
    assert refused.ephemeral
    assert "only cancel your own jobs" in refused.response.content
    cancelled = await pat.slash(channel, "cancel", job=job_id)
    assert cancelled.ephemeral
    assert f"Job `{job_id}` cancelled" in cancelled.response.content
    row = await discord_env.bot.service.store.fetch_one("SELECT status FROM jobs WHERE id = ?", (job_id,))
    assert row[0] == "cancelled"
