"""/settings, /info and the lane switches through simcord; permutations queue one job per prompt."""

from __future__ import annotations

import pytest
import simcord

from bot.jobs import Lane
from tests.conftest import emit_clicks, scene, wait_until


async def _jobs(env: simcord.Env) -> list[tuple[str, str, str]]:
    rows = await env.bot.service.store.fetch_all("SELECT lane, params, prompt FROM jobs ORDER BY id")
    return [(row[0], row[1], row[2]) for row in rows]


async def test_settings_panel_saves_choices_that_later_jobs_use(discord_env: simcord.Env) -> None:
    _guild, channel, dana = scene(discord_env, "dana")

    panel = await dana.slash(channel, "settings")
    assert panel.ephemeral
    assert panel.response is not None
    assert "**Aspect ratio:** 1:1 (default)" in panel.response.content

    chosen = await dana.select(panel.response.message, ["3:2"], custom_id="settings:aspect")
    assert "**Aspect ratio:** 3:2" in chosen.response.content
    await dana.select(panel.response.message, ["10"], custom_id="settings:steps")
    await dana.select(panel.response.message, ["relax"], custom_id="settings:lane")

    prefs = await discord_env.bot.service.preferences.get(dana.id)
    assert (prefs.aspect, prefs.steps, prefs.lane) == ("3:2", 10, Lane.RELAX)

    await dana.slash(channel, "imagine", prompt="a boat --steps 5")
    [(lane, params, _)] = await _jobs(discord_env)
    assert lane == "relax"
    assert '"width": 72' in params and '"height": 48' in params  # 3:2 from /settings
    assert '"steps": 5' in params  # the prompt's flag wins over /settings

    info = await dana.slash(channel, "info")
    assert info.ephemeral
    assert info.response is not None
    assert "**Lane:** relax" in info.response.content
    assert "a boat" in info.response.content


async def test_lane_switch_commands(discord_env: simcord.Env) -> None:
    _guild, channel, eve = scene(discord_env, "eve")

    result = await eve.slash(channel, "turbo")
    assert result.ephemeral
    assert result.response is not None
    assert "**turbo** lane" in result.response.content
    assert (await discord_env.bot.service.preferences.get(eve.id)).lane is Lane.TURBO

    await eve.slash(channel, "imagine", prompt="a kite --fast")
    [(lane, _, _)] = await _jobs(discord_env)
    assert lane == "fast"  # the flag wins over the default lane


@pytest.mark.slow
async def test_permutations_post_one_grid_per_prompt(discord_env: simcord.Env) -> None:
    _guild, channel, finn = scene(discord_env, "finn")

    result = await finn.slash(channel, "imagine", prompt="a {red, blue} kite --seed 5")
    assert result.response is not None
    prompts = [prompt for _, _, prompt in await _jobs(discord_env)]
    assert prompts == ["a red kite --seed 5", "a blue kite --seed 5"]

    def grids() -> list:
        return [message for message in channel.history() if message.attachments]

    await wait_until(discord_env, lambda: len(grids()) == 2, what="two grids")
    contents = sorted(message.content for message in grids())
    assert "a blue kite" in contents[0]
    assert "a red kite" in contents[1]


async def test_too_many_permutations_are_refused_privately(discord_env: simcord.Env) -> None:
    _guild, channel, gus = scene(discord_env, "gus")

    result = await gus.slash(channel, "imagine", prompt="{a,b,c} {d,e,f} kite")
    assert result.ephemeral
    assert result.response is not None
    assert "more than 8" in result.response.content
    assert await _jobs(discord_env) == []


async def test_model_and_sampler_autocomplete_and_options(discord_env: simcord.Env) -> None:
    _guild, channel, hana = scene(discord_env, "hana")

    models = await hana.autocomplete(channel, "imagine", "model", "tin", prompt="x")
    assert [choice["value"] for choice in models] == ["tiny"]  # only models the owner enabled for members
    assert await hana.autocomplete(channel, "imagine", "model", "sd", prompt="x") == []
    samplers = await hana.autocomplete(channel, "imagine", "sampler", "dpm", prompt="x")
    assert [choice["value"] for choice in samplers] == ["dpmpp_2m", "dpmpp_2m_karras"]

    await hana.slash(channel, "imagine", prompt="a mill", sampler="ddim")
    [(_, params, prompt)] = await _jobs(discord_env)
    assert '"sampler": "ddim"' in params
    assert prompt == "a mill --sampler ddim"

    refused = await hana.slash(channel, "imagine", prompt="a mill", model="nope")
    assert refused.ephemeral
    assert refused.response is not None
    assert "not a model on this server" in refused.response.content


async def test_a_crafted_settings_choice_is_refused_and_not_stored(discord_env: simcord.Env) -> None:
    """A client may send any value for a /settings select: values no flag would allow get the flag's error,
    privately, and nothing is stored, so no later job runs 100,000 steps or an unknown sampler."""
    guild, channel, eve = scene(discord_env, "eve")
    panel = await eve.slash(channel, "settings")
    assert panel.response is not None
    for custom_id, value in (("settings:steps", "100000"), ("settings:sampler", "warp"), ("settings:lane", "vip")):
        emit_clicks(discord_env, panel.response.message, custom_id, user_id=eve.id, guild_id=guild.id, values=[value])
    await discord_env.settle()
    refusals = [str(r.json) for r in discord_env.http_requests if r.path.endswith("/callback") and r.json]
    for value in ("`--steps 100000` is out of range", "`--sampler warp` is not a sampler", "`vip` is not a lane"):
        assert any(value in text for text in refusals), (value, refusals)
    prefs = await discord_env.bot.service.preferences.get(eve.id)
    assert (prefs.steps, prefs.sampler, prefs.lane) == (None, None, None)
