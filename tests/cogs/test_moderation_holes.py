"""Moderation cannot be bypassed: direct messages, sweep values, permutations and buttons that re-use a stored
prompt all pass the same blocklist and channel rules, through the real Discord stack, before anything is charged."""

from __future__ import annotations

import pytest
import simcord

from tests.conftest import emit_clicks, posts, scene, wait_until


async def _block(env: simcord.Env, guild: simcord.GuildHandle, *words: str) -> None:
    await env.bot.service.moderation.block(guild.id, list(words), actor_id=1, reason="server rules")


async def _charged(env: simcord.Env) -> int:
    return int(await env.bot.service.store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'"))


async def _jobs(env: simcord.Env) -> int:
    return int(await env.bot.service.store.fetch_value("SELECT COUNT(*) FROM jobs"))


async def test_commands_are_guild_only_and_a_direct_message_gets_a_friendly_answer(discord_env: simcord.Env) -> None:
    """Discord offers no command in a DM; one that arrives anyway (an old client) is answered and queues nothing."""
    guild, _channel, _mod = scene(discord_env, "mod")
    await _block(discord_env, guild, "nsfw")
    dana = discord_env.create_user("dana")
    with pytest.raises(simcord.SetupError, match="reason: context"):
        await dana.slash("imagine", prompt="a nsfw fox")

    for name in ("imagine", "sweep", "settings", "info"):
        command = discord_env.backend.find_command(name, None, type=1)
        assert command is not None
        assert command["contexts"] == [0], name  # guild only
        command["contexts"] = [0, 1, 2]  # as if a stale client still offered it in DMs
    result = await dana.slash("imagine", prompt="a nsfw fox")

    assert result.ephemeral
    assert result.response is not None
    assert "works inside servers only" in result.response.content
    assert await _jobs(discord_env) == 0
    assert await _charged(discord_env) == 0


@pytest.mark.slow
async def test_a_button_pressed_outside_a_server_is_refused(discord_env: simcord.Env) -> None:
    """The core refuses a request without a server whatever surface it came through."""
    _guild, channel, ann = scene(discord_env, "ann")
    await ann.slash(channel, "imagine", prompt="a kettle --seed 2")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid")
    grid = posts(channel)[0]
    upscale = next(button.custom_id for button in grid.components[0].children if button.label == "U1")
    charged = await _charged(discord_env)

    drifter = discord_env.create_user("drifter")
    emit_clicks(discord_env, grid, upscale, user_id=drifter.id, guild_id=None, channel_id=drifter.dm_channel.id)
    await discord_env.settle()

    assert await _jobs(discord_env) == 1
    assert await _charged(discord_env) == charged
    refusals = [r for r in discord_env.http_requests if r.path.endswith("/callback") and r.json]
    assert any("works inside servers only" in str(r.json) for r in refusals)


async def test_sweep_prompt_values_are_moderated(discord_env: simcord.Env) -> None:
    """``x: prompt=cat,nsfw`` cannot swap a blocked word in; the whole sweep is refused before it is charged."""
    guild, channel, sam = scene(discord_env, "sam")
    await _block(discord_env, guild, "nsfw")

    result = await sam.slash(channel, "sweep", prompt="a cat on a sofa", x="prompt=cat,nsfw", y="cfg=3,5")

    assert result.ephemeral
    assert result.response is not None
    assert "blocked word `nsfw`" in result.response.content
    assert await _jobs(discord_env) == 0
    assert await _charged(discord_env) == 0


async def test_every_permutation_is_moderated(discord_env: simcord.Env) -> None:
    """One blocked option among the permutations refuses the whole message."""
    guild, channel, sam = scene(discord_env, "sam")
    await _block(discord_env, guild, "gore")

    result = await sam.slash(channel, "imagine", prompt="a {calm, gore} lake")

    assert result.response is not None
    assert "blocked word `gore`" in result.response.content
    assert await _jobs(discord_env) == 0


@pytest.mark.slow
async def test_a_button_rechecks_its_stored_prompt_after_the_blocklist_changed(discord_env: simcord.Env) -> None:
    """A grid made before a word was blocked: its U, V and 🔄 buttons are refused now, and cost nothing."""
    guild, channel, ivo = scene(discord_env, "ivo")
    await ivo.slash(channel, "imagine", prompt="a gore scene --seed 4")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid")
    grid = posts(channel)[0]
    await _block(discord_env, guild, "gore")
    charged = await _charged(discord_env)

    for label in ("U1", "V2"):
        clicked = await ivo.click(grid, label=label)
        assert clicked.response is not None
        assert "blocked word `gore`" in clicked.response.content, label
    reroll = next(button.custom_id for button in grid.components[0].children if button.custom_id.startswith("ib:R:"))
    rerolled = await ivo.click(grid, custom_id=reroll)
    assert rerolled.response is not None
    assert "blocked word `gore`" in rerolled.response.content

    assert await _jobs(discord_env) == 1
    assert await _charged(discord_env) == charged


@pytest.mark.slow
async def test_channel_rules_hold_for_sweeps_and_buttons(discord_env: simcord.Env) -> None:
    """With only #art allowed, /sweep and a button in #general are refused and name #art."""
    guild, art, lin = scene(discord_env, "lin")
    general = guild.create_text_channel("general")
    await lin.slash(art, "imagine", prompt="a tram --seed 5")
    await wait_until(discord_env, lambda: bool(posts(art)), what="the grid")
    await discord_env.bot.service.moderation.set_channel(guild.id, art.id, allowed=True, actor_id=1)

    swept = await lin.slash(general, "sweep", prompt="a tram", x="cfg=3,5")

    assert swept.response is not None
    assert f"<#{art.id}>" in swept.response.content
    assert await _jobs(discord_env) == 1


@pytest.mark.parametrize(
    "prompt",
    [
        "a g.o.r.e scene",
        "n\u0455fw art",  # Cyrillic dze for s
        "go\u034fre at dawn",  # combining grapheme joiner inside the word
        "g\u180eore at dawn",  # Mongolian vowel separator inside the word
        "a n s f w picture",
    ],
)
async def test_evasions_are_refused_through_discord(discord_env: simcord.Env, prompt: str) -> None:
    """Spelled-out words after a one-letter word, look-alike letters and invisible marks do not hide a word."""
    guild, channel, ola = scene(discord_env, "ola")
    await _block(discord_env, guild, "gore", "nsfw")

    result = await ola.slash(channel, "imagine", prompt=prompt)

    assert result.response is not None
    assert "blocked word" in result.response.content
    assert await _jobs(discord_env) == 0


@pytest.mark.slow
async def test_a_crafted_button_cannot_reach_a_result_of_another_server_or_channel(discord_env: simcord.Env) -> None:
    """Job ids are sequential: a press crafted with another server's (or a private channel's) job id is refused
    as if the job did not exist, and nothing is stored or charged; the real button still works."""
    guild, channel, ann = scene(discord_env, "ann")
    await ann.slash(channel, "imagine", prompt="a private kettle --seed 2")
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the grid")
    grid = posts(channel)[0]
    upscale = next(button.custom_id for button in grid.components[0].children if button.label == "U1")
    jobs, charged = await _jobs(discord_env), await _charged(discord_env)

    other_guild, other_channel, eve = scene(discord_env, "eve")
    staff_only = guild.create_text_channel("staff")
    mallory = guild.add_member(discord_env.create_user("mallory"))
    emit_clicks(discord_env, grid, upscale, user_id=eve.id, guild_id=other_guild.id, channel_id=other_channel.id)
    emit_clicks(discord_env, grid, upscale, user_id=mallory.id, guild_id=guild.id, channel_id=staff_only.id)
    await discord_env.settle()

    assert (await _jobs(discord_env), await _charged(discord_env)) == (jobs, charged)
    refusals = [str(r.json) for r in discord_env.http_requests if r.path.endswith("/callback") and r.json]
    assert sum("does not exist" in text for text in refusals) == 2
    assert not any("kettle" in text for text in refusals)

    emit_clicks(discord_env, grid, upscale, user_id=mallory.id, guild_id=guild.id)  # the button where it is shown
    await discord_env.settle()
    assert await _jobs(discord_env) == jobs + 1
