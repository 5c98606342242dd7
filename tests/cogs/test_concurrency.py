"""Bursts through the real Discord stack: one button clicked 20 times at once; 30 members at once."""

from __future__ import annotations

import simcord
from simcord import interactions as sim_interactions
from simcord.backend import serializers

from tests.conftest import posts, scene, wait_until


def _emit_clicks(
    env: simcord.Env, actor: simcord.MemberActor, channel_id: int, message_id: int, custom_id: str, times: int
) -> None:
    """Deliver ``times`` clicks of one button without waiting between them (a double-clicking member, a bot)."""
    stored = env.backend.get_message(channel_id, message_id)
    for _ in range(times):
        record, payload = sim_interactions.base_payload(
            env.backend,
            type=3,
            channel_id=stored.channel_id,
            guild_id=actor.guild.id,
            user_id=actor.id,
            data={"custom_id": custom_id, "component_type": 2},
        )
        payload["message"] = dict(serializers.message_payload(env.backend, stored))
        record.source_message_id = stored.id
        env.backend.emit("INTERACTION_CREATE", payload)


async def test_one_button_clicked_twenty_times_makes_one_job(discord_env: simcord.Env) -> None:
    _guild, channel, rae = scene(discord_env, "rae")
    await rae.slash(channel, "imagine", prompt="a harbour --seed 6")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid")
    grid = posts(channel)[0]
    custom_id = next(button.custom_id for button in grid.components[0].children if button.label == "U3")
    service = discord_env.bot.service
    before = await service.ledger.balance(rae.id)

    _emit_clicks(discord_env, rae, channel.id, grid.id, custom_id, 20)
    await discord_env.settle()

    rows = await service.store.fetch_all("SELECT kind, cost FROM jobs WHERE kind = 'upscale'")
    assert len(rows) == 1
    assert await service.ledger.balance(rae.id) == before - rows[0][1]
    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="the single upscale")


async def test_a_hundred_members_at_once_are_each_charged_once(discord_env: simcord.Env) -> None:
    guild, channel, first = scene(discord_env, "m0")
    members = [first, *(guild.add_member(discord_env.create_user(f"m{index}")) for index in range(1, 100))]
    root = discord_env.backend.find_command("imagine", guild.id, type=1)
    for member in members:
        _record, payload = sim_interactions.base_payload(
            discord_env.backend,
            type=2,
            channel_id=channel.id,
            guild_id=guild.id,
            user_id=member.id,
            data={
                "id": root["id"],
                "name": "imagine",
                "type": 1,
                "options": [{"name": "prompt", "type": 3, "value": f"a lantern {member.id} --relax"}],
            },
        )
        discord_env.backend.emit("INTERACTION_CREATE", payload)
    await discord_env.settle()

    service = discord_env.bot.service
    rows = await service.store.fetch_all("SELECT user_id, COUNT(*) FROM jobs GROUP BY user_id")
    assert len(rows) == 100
    assert all(count == 1 for _user, count in rows)
    drift = await service.store.fetch_value(
        "SELECT COUNT(*) FROM users u WHERE u.balance != (SELECT COALESCE(SUM(delta), 0) FROM ledger l"
        " WHERE l.user_id = u.user_id)"
    )
    assert drift == 0
