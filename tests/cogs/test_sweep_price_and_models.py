"""Through Discord: a sweep is charged for the steps it renders, and a member cannot make the engine download a
model or use one the owner did not enable."""

from __future__ import annotations

from pathlib import Path

import pytest
import simcord

from config.settings import Settings
from tests.conftest import scene, step_priced_settings


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """One credit per 64x64 image step (so tiny jobs show their real work), and sd15 enabled but not downloaded."""
    return step_priced_settings(data_dir, tmp_path / "imagine.db", ["tiny", "sd15"])


async def test_a_steps_sweep_is_charged_for_its_cells_steps(discord_env: simcord.Env) -> None:
    """2 seeds x steps 10 and 20 at 64x64: 2 x (10 + 20) = 60 credits, shown before it runs and in the ledger."""
    _guild, channel, sue = scene(discord_env, "sue")

    result = await sue.slash(channel, "sweep", prompt="a lamp --ar 1:1", x="steps=10,20", y="seed=1,2")

    assert result.response is not None
    assert "cost 60 credits (balance 940)" in result.response.content
    debit = await discord_env.bot.service.store.fetch_value("SELECT delta FROM ledger WHERE kind = 'debit'")
    assert debit == -60


async def test_a_member_cannot_start_a_download(discord_env: simcord.Env) -> None:
    """sd15 is enabled but not on disk: refused before it is charged, telling the owner's command; sdxl is not
    enabled at all."""
    _guild, channel, tom = scene(discord_env, "tom")

    missing = await tom.slash(channel, "imagine", prompt="a fox", model="sd15")
    disabled = await tom.slash(channel, "imagine", prompt="a fox --model sdxl")

    assert missing.response is not None
    assert "`sd15` is not downloaded on this server yet" in missing.response.content
    assert "python -m bot models pull sd15" in missing.response.content
    assert disabled.response is not None
    assert "is not a model on this server" in disabled.response.content
    assert await discord_env.bot.service.store.fetch_value("SELECT COUNT(*) FROM jobs") == 0
    choices = await tom.autocomplete(channel, "imagine", "model", "", prompt="x")
    assert sorted(choice["value"] for choice in choices) == ["sd15", "tiny"]
