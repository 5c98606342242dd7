"""The Discord side of an install, through simcord and the real bot: the start-up line, and channels where the bot
lacks what it needs to post results (refused before anything is charged; a refused late post names what is
missing)."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import discord
import pytest
import simcord
from PIL import Image
from simcord.backend.models import Overwrite
from simcord.builders import ChannelHandle
from simcord.enums import OverwriteType

from bot.discord_surface.discord_bot import ImagineBot
from bot.events import EventKind, JobEvent
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from tests.conftest import make_settings, posts, release, scene, wait_until

INVITE_BITS = 274877959168
"""View Channel, Send Messages, Send Messages in Threads, Attach Files, Embed Links (pinned in the unit tests)."""


@asynccontextmanager
async def bot_in_servers(
    settings: Settings, engine: EngineSupervisor, servers: tuple[str, ...], *, refuse_guild_sync: bool = False
) -> AsyncIterator[simcord.Env]:
    """The real bot, started on a simcord Discord where it is already in ``servers`` (as after a restart);
    ``refuse_guild_sync``: Discord answers a guild command sync with 403 Missing Access (not in that server)."""
    bot = ImagineBot(settings, engine=engine)
    env = simcord.Env(bot, strict_sync=not refuse_guild_sync)
    bot.external_wait = env.external_wait
    for name in servers:
        env.create_guild(name)
    if refuse_guild_sync:
        env.inject_error(
            "PUT", "/applications/*/guilds/*/commands", status=403, code=50001, message="Missing Access", times=None
        )
    try:
        await env.start()
    except BaseException:
        await release(bot)  # a start that failed in setup_hook leaves the service open
        raise
    try:
        yield env
    finally:
        await env.shutdown()
        await release(bot)


def startup_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith("ready as ")]


def deny_bot(env: simcord.Env, channel: ChannelHandle, **denied: bool) -> None:
    """A moderator edits the channel: the bot's member overwrite denies ``denied`` (gateway update included)."""
    _allow, deny = discord.PermissionOverwrite(**denied).pair()
    overwrite = Overwrite(target_id=env.backend.bot_user.id, type=OverwriteType.MEMBER, allow=0, deny=deny.value)
    env.backend.set_overwrite(channel.id, overwrite)


async def count(env: simcord.Env, sql: str) -> int:
    return int(await env.bot.service.store.fetch_value(sql))


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "blue").save(buffer, format="PNG")
    return buffer.getvalue()


# --- the start-up line ----------------------------------------------------------------------------------------------


async def test_a_bot_in_no_server_logs_its_invite_url(
    settings: Settings, engine: EngineSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    """Ready in no server: one line with the bot's name and id and the invite URL with its client id."""
    caplog.set_level(logging.INFO, logger="bot.discord_surface.discord_setup")
    async with bot_in_servers(settings, engine, ()) as env:
        application_id = env.backend.application_id
        bot_user = env.backend.bot_user
    [line] = startup_lines(caplog)
    assert f"(id {bot_user.id})" in line
    assert bot_user.name in line
    assert "in no server yet; invite it with " in line
    assert line.endswith(
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope=bot+applications.commands&permissions={INVITE_BITS}"
    )


async def test_a_bot_in_two_servers_names_both(
    settings: Settings, engine: EngineSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    """Ready in two servers: one line naming both with their ids, and no invite URL."""
    caplog.set_level(logging.INFO, logger="bot.discord_surface.discord_setup")
    async with bot_in_servers(settings, engine, ("Pixel Club", "Night Owls")) as env:
        ids = {guild.name: guild.id for guild in env.backend.guilds.values()}
    [line] = startup_lines(caplog)
    assert " in 2 servers: " in line
    assert f"Pixel Club (id {ids['Pixel Club']})" in line
    assert f"Night Owls (id {ids['Night Owls']})" in line
    assert "oauth2" not in line


async def test_sync_guild_id_of_a_server_the_bot_is_not_in_says_how_to_fix_it(
    data_dir: Path, tmp_path: Path, engine: EngineSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    """Discord refuses the guild sync (Missing Access): one error line with the server id and the invite URL, and
    the bot still starts (no traceback out of setup_hook)."""
    caplog.set_level(logging.INFO, logger="bot")
    settings = make_settings(data_dir, database_path=tmp_path / "imagine.db", sync_guild_id=424242424242424242)
    async with bot_in_servers(settings, engine, (), refuse_guild_sync=True) as env:
        application_id = env.backend.application_id
        assert env.bot.is_ready()
    [line] = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert line.startswith("could not sync the slash commands to server 424242424242424242 (sync_guild_id)")
    assert f"client_id={application_id}&scope=bot+applications.commands&permissions={INVITE_BITS}" in line


# --- a channel where the bot cannot post results -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("denied", "named", "not_named"),
    [
        ({"attach_files": False}, "Attach Files", "Embed Links"),
        ({"attach_files": False, "embed_links": False}, "Attach Files and Embed Links", "Send Messages"),
        ({"send_messages": False}, "Send Messages", "Attach Files"),
        ({"view_channel": False}, "View Channel", "Attach Files"),
    ],
    ids=["attach-files", "attach-and-embed", "send-messages-only", "view-channel"],
)
async def test_imagine_where_the_bot_lacks_a_permission_is_refused_before_any_charge(
    discord_env: simcord.Env, denied: dict[str, bool], named: str, not_named: str
) -> None:
    """The member reads one private line naming the channel, what is missing and where to grant it; no job, no
    ledger row, no account, nothing deferred."""
    guild = discord_env.create_guild()
    member = guild.add_member(discord_env.create_user("mia"))
    art = guild.create_text_channel("art", overwrites={discord_env.bot.user: discord.PermissionOverwrite(**denied)})

    result = await member.slash(art, "imagine", prompt="a red fox --seed 7")

    assert result.ephemeral
    assert not result.deferred
    assert result.response is not None
    text = result.response.content
    assert f"I can't post images in #art: a moderator can give me {named} there" in text
    assert "(Server Settings → Roles, or the channel's permissions)" in text
    assert not_named not in text
    assert await count(discord_env, "SELECT COUNT(*) FROM jobs") == 0
    assert await count(discord_env, "SELECT COUNT(*) FROM ledger") == 0
    assert posts(art) == []


@pytest.mark.slow
async def test_sweep_and_edit_are_refused_too_and_a_normal_channel_still_queues(discord_env: simcord.Env) -> None:
    """/sweep and /edit (before its images are downloaded) are refused in #art; /imagine in #general queues."""
    guild = discord_env.create_guild()
    member = guild.add_member(discord_env.create_user("noor"))
    art = guild.create_text_channel(
        "art", overwrites={discord_env.bot.user: discord.PermissionOverwrite(embed_links=False)}
    )
    general = guild.create_text_channel("general")

    swept = await member.slash(art, "sweep", prompt="a lamp", x="cfg=3,7")
    edited = await member.slash(art, "edit", image=("in.png", _png()), mask=("mask.png", _png()), prompt="a sun")
    for result in (swept, edited):
        assert result.response is not None
        assert not result.deferred
        assert "I can't post images in #art: a moderator can give me Embed Links there" in result.response.content
    assert await count(discord_env, "SELECT COUNT(*) FROM jobs") == 0

    queued = await member.slash(general, "imagine", prompt="a red fox --seed 7")
    assert queued.response is not None
    assert "queued, position 1" in queued.response.content
    await wait_until(discord_env, lambda: bool(posts(general)), what="the grid in #general")
    assert await count(discord_env, "SELECT COUNT(*) FROM jobs WHERE status = 'completed'") == 1


@pytest.mark.slow
async def test_a_button_in_a_channel_that_lost_a_permission_is_refused(discord_env: simcord.Env) -> None:
    """A result's button pressed after a moderator took Attach Files away: refused privately, nothing queued."""
    _guild, art, ola = scene(discord_env, "ola")
    await ola.slash(art, "imagine", prompt="a tower --seed 4")
    await wait_until(discord_env, lambda: bool(posts(art)), what="the grid post")
    [post] = posts(art)
    deny_bot(discord_env, art, attach_files=False)

    clicked = await ola.click(post, label="U1")

    assert clicked.response is not None
    assert clicked.ephemeral
    assert "I can't post images in #art: a moderator can give me Attach Files there" in clicked.response.content
    assert await count(discord_env, "SELECT COUNT(*) FROM jobs") == 1


async def test_in_a_thread_the_bot_needs_send_messages_in_threads(discord_env: simcord.Env) -> None:
    """A thread whose parent denies the bot Send Messages in Threads: the refusal names that permission."""
    guild = discord_env.create_guild()
    member = guild.add_member(discord_env.create_user("pia"))
    art = guild.create_text_channel(
        "art", overwrites={discord_env.bot.user: discord.PermissionOverwrite(send_messages_in_threads=False)}
    )
    created = discord_env.backend.create_thread(art.id, "fox ideas", member.id)
    thread = ChannelHandle(discord_env, guild, created)

    result = await member.slash(thread, "imagine", prompt="a fox")

    assert result.response is not None
    text = result.response.content
    assert "I can't post images in #fox ideas: a moderator can give me Send Messages in Threads there" in text
    assert await count(discord_env, "SELECT COUNT(*) FROM jobs") == 0


@pytest.mark.slow
async def test_a_late_post_refused_for_a_missing_permission_names_the_channel_and_permission(
    discord_env: simcord.Env, caplog: pytest.LogCaptureFixture
) -> None:
    """The follow-up is refused and, meanwhile, the bot lost Send Messages in #art: the channel post gets 403 /
    50013 and the given-up line names #art and Send Messages."""
    caplog.set_level(logging.INFO)
    _guild, art, quinn = scene(discord_env, "quinn")
    env = discord_env
    fault = {"method": "*", "path": "/webhooks/*", "status": 404, "code": 10015, "message": "refused", "times": None}

    def at_completion(event: JobEvent) -> None:
        if event.kind is EventKind.COMPLETED and fault not in env.backend.faults:
            env.backend.faults.append(fault)
            deny_bot(env, art, send_messages=False)

    env.bot.service.events.subscribe(at_completion)
    await quinn.slash(art, "imagine", prompt="a lighthouse --seed 3")

    def given_up() -> list[str]:
        return [record.getMessage() for record in caplog.records if "gave up posting job" in record.getMessage()]

    await wait_until(env, lambda: bool(given_up()), what="the given-up post")
    assert await env.bot.service.store.fetch_value("SELECT delivery FROM jobs") == "abandoned"
    [line] = given_up()
    assert "403" in line and "50013" in line
    # discord.py, like Discord, takes Attach Files and Embed Links away with Send Messages: all three are named.
    assert "in #art the bot lacks Send Messages, Attach Files and Embed Links; a moderator can give it" in line
    assert posts(art) == []
