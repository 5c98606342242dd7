"""/imagine on a turbo model through simcord's in-memory Discord, the real bot and a real engine process: a grid in
one step without guidance, priced by that one step; past the model's step limit a clear refusal and no charge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import simcord

from config.settings import Settings
from engine.metadata import read_parameters
from tests.conftest import posts, scene, step_priced_settings, wait_until


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """One credit per 64x64 image step (so a tiny job's price shows its steps), and the tiny turbo model enabled."""
    return step_priced_settings(data_dir, tmp_path / "imagine.db", ["tiny", "tiny-turbo"])


@pytest.mark.slow
async def test_imagine_on_a_turbo_model_renders_four_images_in_one_step(discord_env: simcord.Env) -> None:
    """The model's defaults (1 step, CFG 0, Euler a with trailing timesteps) reach the engine, its files say so,
    and the grid costs one step's work: 4 images x 1 step = 4 credits."""
    _guild, channel, ada = scene(discord_env, "ada")

    result = await ada.slash(channel, "imagine", prompt="a red fox --model tiny-turbo --seed 11")

    assert result.response is not None
    assert "cost 4 credits (balance 996)" in result.response.content
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the turbo grid")
    store = discord_env.bot.service.store
    params = json.loads(await store.fetch_value("SELECT params FROM jobs"))
    assert (params["model"], params["steps"], params["cfg"], params["sampler"]) == (
        "tiny-turbo",
        1,
        0.0,
        "euler_a_trailing",
    )
    assert await store.fetch_value("SELECT delta FROM ledger WHERE kind = 'debit'") == -4
    paths = [row[0] for row in await store.fetch_all("SELECT path FROM results ORDER BY idx")]
    assert len(paths) == 4
    for path in paths:
        text = read_parameters(Path(path).read_bytes())
        assert text is not None
        assert "Steps: 1, Sampler: Euler a, CFG scale: 0, " in text
        assert "Model: tiny-turbo" in text and "Schedule type: SGM Uniform" in text
    [post] = posts(channel)
    grid = read_parameters(await post.attachments[0].read())
    assert grid is not None and "Sampler: Euler a" in grid and "Schedule type: SGM Uniform" in grid


async def test_steps_past_a_turbo_models_limit_are_refused_without_a_charge(discord_env: simcord.Env) -> None:
    """`--steps 50` on a model that allows 4: an ephemeral error naming the limit, no job, no ledger row."""
    _guild, channel, bo = scene(discord_env, "bo")

    result = await bo.slash(channel, "imagine", prompt="a red fox --model tiny-turbo --steps 50")

    assert result.ephemeral
    assert result.response is not None
    assert "`--steps 50` is more than model `tiny-turbo` allows: use --steps N with N from 1 to 4" in (
        result.response.content
    )
    store = discord_env.bot.service.store
    assert await store.fetch_value("SELECT COUNT(*) FROM jobs") == 0
    assert await store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0
