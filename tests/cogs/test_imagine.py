"""/imagine through simcord's in-memory Discord, the real bot, and a real engine process."""

from __future__ import annotations

import io

import simcord
from PIL import Image

from bot.custom_ids import parse_custom_id
from tests.conftest import wait_until


def _grid_messages(channel: simcord.ChannelHandle) -> list:
    return [message for message in channel.history() if message.attachments]


async def test_imagine_defers_queues_and_posts_grid_with_buttons(discord_env: simcord.Env) -> None:
    guild = discord_env.create_guild()
    channel = guild.create_text_channel("art")
    alice = guild.add_member(discord_env.create_user("alice"))

    result = await alice.slash(channel, "imagine", prompt="a red fox --ar 3:2 --seed 7")

    assert result.acknowledged
    defers = [r for r in discord_env.http_requests if r.path.endswith("/callback")]
    assert defers and defers[0].json["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert result.response is not None
    assert "queued, position 1 in the fast lane" in result.response.content
    assert "a red fox" in result.response.content

    await wait_until(discord_env, lambda: bool(_grid_messages(channel)), what="the grid post")

    [post] = _grid_messages(channel)
    assert alice.mention in post.content
    assert "seed 7" in post.content
    [attachment] = post.attachments
    assert attachment.filename.endswith(".png")
    data = await attachment.read()
    with Image.open(io.BytesIO(data)) as grid:
        assert grid.size == (160, 96)  # 2×2 of 80×48 (3:2 on the tiny model's 64² area)
        assert "Seed: 7" in grid.info["parameters"]

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
    guild = discord_env.create_guild()
    channel = guild.create_text_channel("art")
    bob = guild.add_member(discord_env.create_user("bob"))

    result = await bob.slash(channel, "imagine", prompt="a cat --ar 3:0")

    assert result.ephemeral
    assert not result.deferred
    assert result.response is not None
    assert "--ar W:H" in result.response.content
    bot = discord_env.bot
    assert await bot.service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0


async def test_result_button_answers_not_available_yet(discord_env: simcord.Env) -> None:
    guild = discord_env.create_guild()
    channel = guild.create_text_channel("art")
    carol = guild.add_member(discord_env.create_user("carol"))
    await carol.slash(channel, "imagine", prompt="a lighthouse --seed 3")
    await wait_until(discord_env, lambda: bool(_grid_messages(channel)), what="the grid post")
    [post] = _grid_messages(channel)

    clicked = await carol.click(post, label="U2")

    assert clicked.ephemeral
    assert clicked.response is not None
    assert "Upscaling image 2 is not available yet" in clicked.response.content


async def test_buttons_still_answer_after_a_restart(discord_env: simcord.Env, settings, engine) -> None:  # type: ignore[no-untyped-def]
    from bot.discord_bot import ImagineBot

    guild = discord_env.create_guild()
    channel = guild.create_text_channel("art")
    ivy = guild.add_member(discord_env.create_user("ivy"))
    await ivy.slash(channel, "imagine", prompt="a tower --seed 4")
    await wait_until(discord_env, lambda: bool(_grid_messages(channel)), what="the grid post")
    [post] = _grid_messages(channel)

    old = discord_env.bot
    await old.service.close()
    fresh = ImagineBot(settings, engine=engine)
    fresh.external_wait = discord_env.external_wait
    await discord_env.restart_bot(fresh)

    clicked = await ivy.click(post, label="V3")
    assert clicked.ephemeral
    assert clicked.response is not None
    assert "Varying image 3" in clicked.response.content
