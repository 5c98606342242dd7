"""The image safety check in Discord, through simcord, the real bot and a real engine whose checker flags every
image: a flagged result is posted behind a spoiler with the reason, or withheld and refunded, as the server says;
a channel marked age-restricted is not checked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import discord
import pytest
import simcord
from simcord.backend import serializers

from bot.discord_surface.discord_bot import ImagineBot
from bot.scheduling.ledger import EntryKind
from tests.conftest import posts, release, scene, wait_until
from tests.safety_engine import flagging_data_dir, flagging_engine, safety_settings

pytestmark = pytest.mark.slow

AGE_RESTRICTED: set[str] = set()
"""Names of channels this module's Discord reports as age-restricted (simcord has no such flag: its payloads gain
it here)."""


@pytest.fixture(autouse=True)
def age_restricted_channels(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Channel payloads (gateway events, interactions, REST) carry ``nsfw`` for the channels named in the set, as
    Discord's do for a channel marked age-restricted; discord.py reads it as it comes."""
    real = serializers.channel_payload

    def with_nsfw(backend: Any, channel: Any) -> Any:
        payload = real(backend, channel)
        if channel.name in AGE_RESTRICTED:
            payload = {**payload, "nsfw": True}
        return payload

    monkeypatch.setattr(serializers, "channel_payload", with_nsfw)
    yield AGE_RESTRICTED
    AGE_RESTRICTED.clear()


@pytest.fixture
async def bot_on(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """Starts the real bot on simcord with the [safety] settings asked for and the flagging engine."""
    engine = flagging_engine(tmp_path_factory)
    envs: list[simcord.Env] = []

    async def start(**safety: object) -> simcord.Env:
        settings = safety_settings(flagging_data_dir(tmp_path_factory), tmp_path / "imagine.db", **safety)  # type: ignore[arg-type]
        bot = ImagineBot(settings, engine=engine)
        env = simcord.Env(bot)
        bot.external_wait = env.external_wait
        await env.start()
        envs.append(env)
        return env

    yield start
    for env in envs:
        await env.shutdown()
        if isinstance(env.bot, ImagineBot):
            await release(env.bot)
        env._raise_errors_since(env._errors_acknowledged)


async def _job_row(env: simcord.Env) -> Any:
    row = await env.bot.service.store.fetch_one("SELECT id, status, safety, error, cost, user_id FROM jobs")
    assert row is not None
    return row


async def test_a_flagged_result_is_posted_behind_a_spoiler_with_the_reason(bot_on: Any) -> None:
    """spoiler: the grid is a SPOILER_ attachment, the embed does not show it, the post says why."""
    env = await bot_on(action="spoiler")
    _guild, channel, alice = scene(env, "alice")
    await alice.slash(channel, "imagine", prompt="a red fox --seed 7")
    await wait_until(env, lambda: bool(posts(channel)), what="the grid post")

    [post] = posts(channel)
    [attachment] = post.attachments
    assert attachment.filename.startswith("SPOILER_") and attachment.is_spoiler()
    assert "Flagged by the image safety check: images 1, 2, 3 and 4 (NSFW content)" in post.content
    assert "Shown as a spoiler." in post.content and alice.mention in post.content
    [embed] = post.embeds
    assert embed.image.url is None and "**Seed** 7" in (embed.description or "")
    assert post.components  # the buttons stay: what they make is checked again
    assert (await _job_row(env))["safety"] == "flagged:NSFW content"


async def test_a_withheld_result_is_not_posted_and_is_refunded(bot_on: Any) -> None:
    """withhold: no image reaches the channel; the member alone reads why, with the refund."""
    env = await bot_on(action="withhold")
    guild, channel, bob = scene(env, "bob")
    onlooker = guild.add_member(env.create_user("onlooker"))
    await bob.slash(channel, "imagine", prompt="a red fox --seed 7")
    ledger = env.bot.service.ledger
    notices = lambda: [m for m in channel.history(viewer=bob) if "withheld by the image safety check" in m.content]  # noqa: E731
    await wait_until(env, lambda: bool(notices()), what="the withheld notice")

    [notice] = notices()
    assert notice.flags.ephemeral
    assert "images 1, 2, 3 and 4 were flagged (NSFW content)" in notice.content
    assert "Your credits were refunded." in notice.content
    assert not posts(channel)
    assert not [m for m in channel.history(viewer=onlooker) if "withheld" in m.content]
    row = await _job_row(env)
    assert (row["status"], row["safety"]) == ("failed", "flagged:NSFW content")
    entries = [entry for entry in await ledger.entries(row["user_id"], limit=50) if entry.job_id == row["id"]]
    assert sorted(entry.kind for entry in entries) == [EntryKind.DEBIT, EntryKind.REFUND]
    assert row["cost"] > 0 and sum(entry.delta for entry in entries) == 0


async def test_an_age_restricted_channel_is_not_checked(bot_on: Any, age_restricted_channels: set[str]) -> None:
    """withhold would stop a flagged job: in a channel marked NSFW the result is posted as it is."""
    env = await bot_on(action="withhold")
    age_restricted_channels.add("after-dark")
    guild = env.create_guild()
    channel = guild.create_text_channel("after-dark")
    cached = env.bot.get_channel(channel.id)
    assert isinstance(cached, discord.TextChannel) and cached.is_nsfw()
    carol = guild.add_member(env.create_user("carol"))
    await carol.slash(channel, "imagine", prompt="a red fox --seed 7")
    await wait_until(env, lambda: bool(posts(channel)), what="the grid post")

    [post] = posts(channel)
    assert not post.attachments[0].is_spoiler() and "safety check" not in post.content
    assert (await _job_row(env))["safety"] == "skipped:nsfw-channel"
