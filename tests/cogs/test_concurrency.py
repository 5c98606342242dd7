"""Bursts through the real Discord stack: one button clicked 20 times at once; 30 members at once."""

from __future__ import annotations

import pytest
import simcord
from simcord import interactions as sim_interactions

from tests.conftest import emit_clicks, posts, scene, wait_until


@pytest.mark.slow
async def test_one_button_clicked_twenty_times_makes_one_job(discord_env: simcord.Env) -> None:
    _guild, channel, rae = scene(discord_env, "rae")
    await rae.slash(channel, "imagine", prompt="a harbour --seed 6")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid")
    grid = posts(channel)[0]
    custom_id = next(button.custom_id for button in grid.components[0].children if button.label == "U3")
    service = discord_env.bot.service
    before = await service.ledger.balance(rae.id)

    emit_clicks(discord_env, grid, custom_id, user_id=rae.id, guild_id=rae.guild.id, times=20)
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
