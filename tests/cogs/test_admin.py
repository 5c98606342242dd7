"""/admin through simcord: moderators change the blocklist and channel rules; nobody else can."""

from __future__ import annotations

import discord
import simcord

from bot.moderation import Moderation


def _moderator(env: simcord.Env, guild: simcord.GuildHandle) -> simcord.MemberActor:
    mods = guild.create_role("Mods", permissions=discord.Permissions(manage_guild=True))
    return guild.add_member(env.create_user("mod"), roles=[mods])


async def _job_count(env: simcord.Env) -> int:
    return int(await env.bot.service.store.fetch_value("SELECT COUNT(*) FROM jobs"))


async def test_blocklist_blocks_prompts_and_is_audited(discord_env: simcord.Env) -> None:
    guild = discord_env.create_guild()
    channel = guild.create_text_channel("art")
    mod = _moderator(discord_env, guild)
    member = guild.add_member(discord_env.create_user("member"))

    added = await mod.slash(channel, "admin blocklist add", words="gore, blood bath", reason="server rules")
    assert added.ephemeral
    assert added.response is not None
    assert "`gore`" in added.response.content
    assert "`blood bath`" in added.response.content

    refused = await member.slash(channel, "imagine", prompt="a G0RE scene --ar 3:2")
    assert refused.ephemeral
    assert refused.response is not None
    assert "blocked word `gore`" in refused.response.content
    assert await _job_count(discord_env) == 0

    listed = await mod.slash(channel, "admin blocklist list")
    assert listed.response is not None
    assert "`blood bath`, `gore`" in listed.response.content

    removed = await mod.slash(channel, "admin blocklist remove", words="gore")
    assert removed.response is not None
    assert "Unblocked: `gore`" in removed.response.content

    [latest, first] = (await Moderation(discord_env.bot.service.store).audit_log())[:2]
    assert (first.action, first.actor_id, first.reason) == ("blocklist.add", mod.id, "server rules")
    assert (latest.action, latest.target) == ("blocklist.remove", "gore")


async def test_member_is_refused_even_when_discord_lets_them_run_admin(discord_env: simcord.Env) -> None:
    guild = discord_env.create_guild()
    channel = guild.create_text_channel("art")
    member = guild.add_member(discord_env.create_user("sneaky"))
    command = discord_env.backend.find_command("admin", guild.id, type=1)
    assert command is not None
    guild.set_command_permissions(int(command["id"]), {guild.default_role: True})

    result = await member.slash(channel, "admin blocklist add", words="cats")

    assert result.ephemeral
    assert result.response is not None
    assert "only moderators can use this" in result.response.content
    assert await Moderation(discord_env.bot.service.store).blocked(guild.id) == []


async def test_channel_rules_say_where_the_bot_works(discord_env: simcord.Env) -> None:
    guild = discord_env.create_guild()
    art = guild.create_text_channel("art")
    general = guild.create_text_channel("general")
    mod = _moderator(discord_env, guild)
    member = guild.add_member(discord_env.create_user("member"))

    allowed = await mod.slash(art, "admin channels allow", channel=art)
    assert allowed.response is not None
    assert "now allowed in" in allowed.response.content

    refused = await member.slash(general, "imagine", prompt="a fox")
    assert refused.ephemeral
    assert refused.response is not None
    assert f"use it in <#{art.id}>" in refused.response.content
    assert await _job_count(discord_env) == 0
