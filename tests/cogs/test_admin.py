"""/admin through simcord: moderators change the blocklist and channel rules; nobody else can."""

from __future__ import annotations

import sqlite3

import discord
import simcord

from bot.storage.store import Store
from tests.conftest import scene


async def audit_rows(store: Store, limit: int = 20) -> list[sqlite3.Row]:
    """The newest audit rows (action, actor_id, target, reason), newest first."""
    return await store.fetch_all(
        "SELECT action, actor_id, target, reason FROM audit ORDER BY id DESC LIMIT ?", (limit,)
    )


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

    [latest, first] = (await audit_rows(discord_env.bot.service.store))[:2]
    assert (first["action"], first["actor_id"], first["reason"]) == ("blocklist.add", mod.id, "server rules")
    assert (latest["action"], latest["target"]) == ("blocklist.remove", "gore")


async def test_member_is_refused_even_when_discord_lets_them_run_admin(discord_env: simcord.Env) -> None:
    guild, channel, member = scene(discord_env, "sneaky")
    command = discord_env.backend.find_command("admin", guild.id, type=1)
    assert command is not None
    guild.set_command_permissions(int(command["id"]), {guild.default_role: True})

    result = await member.slash(channel, "admin blocklist add", words="cats")

    assert result.ephemeral
    assert result.response is not None
    assert "only moderators can use this" in result.response.content
    assert await discord_env.bot.service.store.fetch_value("SELECT COUNT(*) FROM blocklist") == 0


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


async def test_credits_tier_ban_and_queue_control(discord_env: simcord.Env) -> None:
    guild = discord_env.create_guild()
    channel = guild.create_text_channel("art")
    mod = _moderator(discord_env, guild)
    member = guild.add_member(discord_env.create_user("member"))
    service = discord_env.bot.service

    given = await mod.slash(channel, "admin credits give", member=member, amount=50, reason="contest prize")
    assert given.response is not None
    start = await service.ledger.balance(member.id)
    assert f"now has **{start}**" in given.response.content
    taken = await mod.slash(channel, "admin credits take", member=member, amount=20, reason="refund abuse")
    assert f"now has **{start - 20}**" in taken.response.content
    await mod.slash(channel, "admin credits set", member=member, amount=0, reason="reset")
    assert await service.ledger.balance(member.id) == 0

    broke = await member.slash(channel, "imagine", prompt="a castle --fast")
    assert broke.response is not None
    assert broke.ephemeral
    assert "relax" in broke.response.content.lower()
    assert await _job_count(discord_env) == 0

    tiered = await mod.slash(channel, "admin tier", member=member, tier="supporter", reason="patreon")
    assert "**supporter** tier" in tiered.response.content

    paused = await mod.slash(channel, "admin pause", reason="maintenance")
    assert "paused" in paused.response.content
    refused = await member.slash(channel, "imagine", prompt="a castle")
    assert refused.ephemeral
    assert "paused" in refused.response.content.lower()
    await mod.slash(channel, "admin resume")

    banned = await mod.slash(channel, "admin ban", member=member, reason="spam")
    assert "can no longer use" in banned.response.content
    refused = await member.slash(channel, "imagine", prompt="a castle")
    assert refused.ephemeral
    assert "banned" in refused.response.content.lower()
    await mod.slash(channel, "admin unban", member=member, reason="appeal")

    queued = await member.slash(channel, "imagine", prompt="a castle --seed 1")
    assert queued.response is not None
    assert "queued" in queued.response.content
    [job_id] = [row[0] for row in await service.store.fetch_all("SELECT id FROM jobs")]
    cancelled = await mod.slash(channel, "admin cancel", job=job_id, reason="test")
    assert f"Job `{job_id}`" in cancelled.response.content

    stats = await mod.slash(channel, "admin stats")
    assert "1 jobs from 1 members" in stats.response.content
    summary = await mod.slash(channel, "admin queue")
    assert "Queue ▶️ running" in summary.response.content

    actions = [entry["action"] for entry in await audit_rows(service.store, limit=50)]
    for action in (
        "credits.give",
        "credits.take",
        "credits.set",
        "tier.set",
        "queue.pause",
        "queue.resume",
        "ban",
        "unban",
        "job.cancel",
    ):
        assert action in actions


async def test_every_admin_command_refuses_a_member(discord_env: simcord.Env) -> None:
    guild, channel, member = scene(discord_env, "sneaky")
    victim = guild.add_member(discord_env.create_user("victim"))
    command = discord_env.backend.find_command("admin", guild.id, type=1)
    guild.set_command_permissions(int(command["id"]), {guild.default_role: True})
    before = await discord_env.bot.service.ledger.balance(victim.id)

    attempts = [
        ("admin credits give", {"member": victim, "amount": 5, "reason": "x"}),
        ("admin credits take", {"member": victim, "amount": 5, "reason": "x"}),
        ("admin credits set", {"member": victim, "amount": 5, "reason": "x"}),
        ("admin tier", {"member": victim, "tier": "unlimited"}),
        ("admin ban", {"member": victim, "reason": "x"}),
        ("admin unban", {"member": victim, "reason": "x"}),
        ("admin queue", {}),
        ("admin cancel", {"job": 1}),
        ("admin pause", {}),
        ("admin resume", {}),
        ("admin stats", {}),
        ("admin blocklist add", {"words": "x"}),
        ("admin blocklist remove", {"words": "x"}),
        ("admin blocklist list", {}),
        ("admin channels allow", {"channel": channel}),
        ("admin channels deny", {"channel": channel}),
    ]
    for name, options in attempts:
        result = await member.slash(channel, name, **options)
        assert result.ephemeral, name
        assert "only moderators can use this" in result.response.content, name
    assert await discord_env.bot.service.ledger.balance(victim.id) == before
    assert not discord_env.bot.service.scheduler.paused
    assert await audit_rows(discord_env.bot.service.store) == []


async def test_a_moderator_cannot_cancel_another_servers_job(discord_env: simcord.Env) -> None:
    """Two servers share the bot: a moderator of one gets "does not exist" for the other's job, which is untouched."""
    _guild, channel, ann = scene(discord_env, "ann")
    other = discord_env.create_guild()
    other_channel = other.create_text_channel("art")
    mod = _moderator(discord_env, other)
    await ann.slash(channel, "imagine", prompt="a lighthouse --seed 4")
    [job_id] = [row[0] for row in await discord_env.bot.service.store.fetch_all("SELECT id FROM jobs")]
    refused = await mod.slash(other_channel, "admin cancel", job=job_id, reason="not yours")
    assert refused.response is not None and refused.ephemeral
    assert f"job {job_id} does not exist" in refused.response.content
    status = await discord_env.bot.service.store.fetch_value("SELECT status FROM jobs WHERE id = ?", (job_id,))
    assert status != "cancelled"
    assert await audit_rows(discord_env.bot.service.store) == []
