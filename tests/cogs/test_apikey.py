"""/apikey through simcord: a private key for the member with the server's rules, a new one replaces the last, a
banned member gets none, and the key never reaches a log line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import simcord

from bot.application.api_keys import ApiKeyIdentity
from bot.errors import BannedError
from config.settings import Settings
from tests.conftest import make_settings, scene

KEY = re.compile(r"\bib_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\b")


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """The tests' settings with the web UI on (the bot itself serves no web here: keys are all it needs)."""
    return make_settings(data_dir, database_path=tmp_path / "imagine.db", web={"enabled": True})


async def _apikey(env: simcord.Env, member: simcord.MemberActor, channel: simcord.ChannelHandle) -> tuple[str, str]:
    """Run /apikey: the one key in the private answer, and the whole answer."""
    result = await member.slash(channel, "apikey")
    assert result.ephemeral
    assert result.response is not None
    content = result.response.content
    [key] = KEY.findall(content)
    return key, content


async def test_apikey_answers_privately_with_a_key_for_this_member_and_server(
    discord_env: simcord.Env, caplog: pytest.LogCaptureFixture
) -> None:
    """The key signs in as the member with the server's rules; the answer says it is shown once, how to use it and
    where the web UI is; no log line holds it."""
    caplog.set_level(logging.DEBUG)
    guild, channel, dana = scene(discord_env, "dana")
    key, content = await _apikey(discord_env, dana, channel)
    keys = discord_env.bot.service.keys
    assert await keys.authenticate(key) == ApiKeyIdentity(key.split("_")[1], dana.id, guild.id, moderator=False)
    assert "shown only once" in content
    assert "Authorization: Bearer <key>" in content and "password of HTTP Basic" in content
    assert "Web UI: http://127.0.0.1:7860" in content
    assert f"API key {key.split('_')[1]}" in caplog.text  # the key's id is logged, its secret never
    assert key not in caplog.text and key.split("_", 2)[2] not in caplog.text
    assert not [message for message in channel.history() if key in message.content]  # nothing public


async def test_apikey_again_revokes_the_key_it_gave_before(discord_env: simcord.Env) -> None:
    """The second /apikey key works and the first stops; a key the owner made for the member stays."""
    guild, channel, eve = scene(discord_env, "eve")
    keys = discord_env.bot.service.keys
    owners = await keys.issue(eve.id, guild_id=guild.id, created_by="console", label="owner's")
    first, _ = await _apikey(discord_env, eve, channel)
    second, _ = await _apikey(discord_env, eve, channel)
    assert first != second
    assert await keys.authenticate(first) is None
    identity = await keys.authenticate(second)
    assert identity is not None and (identity.user_id, identity.guild_id) == (eve.id, guild.id)
    assert await keys.authenticate(owners.secret) is not None
    assert sorted(record.label for record in await keys.records(eve.id)) == ["/apikey", "owner's"]


async def test_a_banned_member_gets_no_key(discord_env: simcord.Env) -> None:
    """A banned member is refused privately with the ban message used everywhere, and no key is made."""
    _guild, channel, bo = scene(discord_env, "bo")
    await discord_env.bot.service.ledger.set_banned(bo.id, True, actor="test")
    result = await bo.slash(channel, "apikey")
    assert result.ephemeral
    assert result.response is not None
    assert str(BannedError()) in result.response.content
    assert not KEY.search(result.response.content)
    assert await discord_env.bot.service.keys.records(bo.id, include_revoked=True) == []


@pytest.mark.parametrize(
    ("web", "fragment"),
    [
        ({"public_url": "https://art.example.org/"}, "Web UI: https://art.example.org\n"),
        ({"host": "0.0.0.0", "port": 8000}, "Web UI: http://0.0.0.0:8000\n"),
    ],
)
async def test_the_answer_names_the_web_address(
    discord_env: simcord.Env, web: dict[str, object], fragment: str
) -> None:
    """The web UI address is [web] public_url when set, else http://host:port."""
    bot = discord_env.bot
    bot.settings = bot.settings.model_copy(update={"web": bot.settings.web.model_copy(update=web)})
    _guild, channel, cy = scene(discord_env, "cy")
    _key, content = await _apikey(discord_env, cy, channel)
    assert fragment in content


async def test_no_key_while_the_web_is_off(discord_env: simcord.Env) -> None:
    """With [web] enabled = false, /apikey says so privately and makes no key."""
    bot = discord_env.bot
    bot.settings = bot.settings.model_copy(update={"web": bot.settings.web.model_copy(update={"enabled": False})})
    _guild, channel, di = scene(discord_env, "di")
    result = await di.slash(channel, "apikey")
    assert result.ephemeral and result.response is not None
    assert "turned off" in result.response.content
    assert await bot.service.keys.records(di.id, include_revoked=True) == []
