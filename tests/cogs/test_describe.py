"""/describe through simcord's in-memory Discord, the real bot and the session's engine (a tiny random BLIP): four
suggestions with buttons; a button queues /imagine of its prompt for whoever presses; refusals private and free."""

from __future__ import annotations

import io
from pathlib import Path

import discord
import pytest
import simcord
from PIL import Image

from bot.requests.describe import parse_describe_id
from config.settings import Settings
from engine.tiny_captioner import vocabulary
from tests.conftest import make_settings, posts, scene, wait_until


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """The tiny models, and the tiny BLIP for /describe."""
    return make_settings(data_dir, database_path=tmp_path / "imagine.db", describe={"source": "tiny:blip"})


def png(size: tuple[int, int] = (96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "purple").save(buffer, "PNG")
    return buffer.getvalue()


def suggestion_ids(post: discord.Message) -> list[tuple[int, int]]:
    found = [parse_describe_id(child.custom_id or "") for row in post.components for child in row.children]
    return [item for item in found if item is not None]


async def balance(env: simcord.Env, user_id: int) -> int:
    return await env.bot.service.ledger.balance(user_id)


async def described(env: simcord.Env, channel: simcord.ChannelHandle, member: simcord.MemberActor) -> discord.Message:
    """/describe an image and wait for its result post."""
    before = len(posts(channel))
    result = await member.slash(channel, "describe", image=("photo.png", png()))
    assert result.response is not None
    assert "**describe this image** — queued, position 1 in the fast lane" in result.response.content
    assert "cost 1 credits" in result.response.content
    await wait_until(env, lambda: len(posts(channel)) > before, what="the describe post")
    return posts(channel)[-1]


@pytest.mark.slow
async def test_describe_posts_four_suggestions_and_a_button_queues_imagine_of_it(discord_env: simcord.Env) -> None:
    """The post shows the image and four numbered prompts ending with its --ar, with buttons 1-4; another member's
    press queues /imagine of that very prompt, charged to them like /imagine."""
    guild, channel, ann = scene(discord_env, "ann")
    post = await described(discord_env, channel, ann)

    [embed] = post.embeds
    lines = [line for line in (embed.description or "").split("\n\n") if line]
    assert [line.split(" ", 1)[0] for line in lines] == ["**1.**", "**2.**", "**3.**", "**4.**"]
    assert all(line.endswith(" --ar 3:2") for line in lines)
    assert embed.image.url.endswith(post.attachments[0].filename)
    assert ann.mention in post.content
    ids = suggestion_ids(post)
    assert [index for _job, index in ids] == [0, 1, 2, 3]
    [(job_id, _)] = {(job, 0) for job, _index in ids}
    assert all(len(child.custom_id or "") <= 100 for row in post.components for child in row.children)
    assert await balance(discord_env, ann.id) == 99
    rows = await discord_env.bot.service.store.fetch_all("SELECT prompt FROM describe_suggestions ORDER BY idx")
    prompts = [row[0] for row in rows]
    assert [line.split(" ", 1)[1] for line in lines] == prompts

    bea = guild.add_member(discord_env.create_user("bea"))
    clicked = await bea.click(post, custom_id=f"ibd:{job_id}:2")
    assert clicked.response is not None and clicked.ephemeral
    assert "queued" in clicked.response.content and "cost 1 credits" in clicked.response.content
    jobs = await discord_env.bot.service.store.fetch_all(
        "SELECT kind, prompt, user_id, parent_id FROM jobs ORDER BY id"
    )
    assert [tuple(row) for row in jobs][-1] == ("imagine", prompts[2], bea.id, job_id)
    assert await balance(discord_env, bea.id) == 99
    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="the imagine grid of the suggestion")


@pytest.mark.slow
async def test_suggestions_with_blocked_words_are_hidden_and_pressing_a_blocked_one_is_refused(
    discord_env: simcord.Env,
) -> None:
    """Words blocked before the post hide every suggestion and leave no button; a word blocked after the post makes
    its button's /imagine a private refusal that charges nothing."""
    guild, channel, cy = scene(discord_env, "cy")
    post = await described(discord_env, channel, cy)
    service = discord_env.bot.service
    job_id, _ = suggestion_ids(post)[0]
    [first] = (await service.describe.description_of(await service.scheduler.get(job_id))).suggestions[:1]
    assert first.prompt is not None
    await service.moderation.block(guild.id, [first.prompt.split()[0]], actor_id=1)
    dee = guild.add_member(discord_env.create_user("dee"))
    refused = await dee.click(post, custom_id=f"ibd:{job_id}:0")
    assert refused.ephemeral and refused.response is not None
    assert "blocked word" in refused.response.content
    assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs WHERE user_id = ?", (dee.id,)) == 0
    assert await service.store.fetch_value("SELECT COUNT(*) FROM ledger WHERE user_id = ?", (dee.id,)) == 0

    await service.moderation.block(guild.id, list(dict.fromkeys(vocabulary()[5:-1])), actor_id=1)
    hidden = await described(discord_env, channel, cy)
    [embed] = hidden.embeds
    assert (embed.description or "").count("hidden: it contains a word this server blocks") == 4
    assert hidden.components == []


async def test_refusals_are_private_and_charge_nothing(discord_env: simcord.Env) -> None:
    """A file that is not an image, a banned member's /describe and a poor member's press: private, no debit."""
    _guild, channel, eve = scene(discord_env, "eve")
    service = discord_env.bot.service
    not_image = await eve.slash(channel, "describe", image=("notes.png", b"hello, not a picture"))
    assert not_image.ephemeral
    text = not_image.response.content if not_image.response else not_image.followups[-1].content
    assert "not an image" in text
    await service.ledger.set_banned(eve.id, True, actor="mod")
    banned = await eve.slash(channel, "describe", image=("photo.png", png()))
    assert banned.ephemeral and banned.response is not None and "banned" in banned.response.content
    assert await service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0
    assert await service.store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0


@pytest.mark.slow
async def test_a_poor_member_pressing_a_suggestion_is_told_privately(discord_env: simcord.Env) -> None:
    guild, channel, fay = scene(discord_env, "fay")
    post = await described(discord_env, channel, fay)
    job_id, _ = suggestion_ids(post)[0]
    gus = guild.add_member(discord_env.create_user("gus"))
    await discord_env.bot.service.ledger.set_balance(gus.id, 0, actor="mod", reason="test")
    poor = await gus.click(post, custom_id=f"ibd:{job_id}:1")
    assert poor.ephemeral
    text = poor.response.content if poor.response else poor.followups[-1].content
    assert "this costs 1 credits and your balance is 0" in text
    assert (
        await discord_env.bot.service.store.fetch_value("SELECT COUNT(*) FROM jobs WHERE user_id = ?", (gus.id,)) == 0
    )
