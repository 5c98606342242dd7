"""Through Discord: a model whose local folder is missing and a LoRA whose file is missing are not offered, and a
request for either is refused privately in one line, before anything is charged, without a path on this server."""

from __future__ import annotations

from pathlib import Path

import discord
import pytest
import simcord

from config.settings import Settings
from tests.conftest import make_settings, scene


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """Model x (offered to members) points at a folder that does not exist; LoRA pixel at a missing file."""
    return make_settings(
        data_dir,
        database_path=tmp_path / "imagine.db",
        models={"x": {"source": str(tmp_path / "models" / "nope")}},
        loras={"pixel": {"path": str(tmp_path / "loras" / "pixel-art.safetensors")}},
    )


async def _refused_and_nothing_charged(
    env: simcord.Env, result: simcord.InteractionResult, fragment: str, tmp_path: Path
) -> None:
    assert result.ephemeral
    assert result.response is not None
    text = result.response.content
    assert "\n" not in text
    assert fragment in text, text
    assert str(tmp_path) not in text and "models pull" not in text
    store = env.bot.service.store
    assert await store.fetch_value("SELECT COUNT(*) FROM jobs") == 0
    assert await store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0


async def test_a_model_whose_folder_is_missing_is_refused(discord_env: simcord.Env, tmp_path: Path) -> None:
    """Both the option and the flag: not available on this server, and where the owner fixes it."""
    _guild, channel, tom = scene(discord_env, "tom")

    by_option = await tom.slash(channel, "imagine", prompt="a fox", model="x")
    by_flag = await tom.slash(channel, "imagine", prompt="a fox --model x")

    expected = "model `x` is not available on this server (its files are missing or incomplete); the owner can fix"
    await _refused_and_nothing_charged(discord_env, by_option, expected, tmp_path)
    await _refused_and_nothing_charged(discord_env, by_flag, expected, tmp_path)


async def test_a_lora_whose_file_is_missing_is_refused(discord_env: simcord.Env, tmp_path: Path) -> None:
    """``<lora:pixel:1>`` names a configured LoRA whose file is gone: refused before the engine sees it."""
    _guild, channel, ann = scene(discord_env, "ann")

    result = await ann.slash(channel, "imagine", prompt="a castle <lora:pixel:1>")

    await _refused_and_nothing_charged(
        discord_env, result, "LoRA pixel is not available on this server (its file is missing)", tmp_path
    )


async def test_a_model_whose_folder_is_missing_is_not_offered(discord_env: simcord.Env) -> None:
    """Neither the /imagine model autocomplete nor the /settings model menu lists x."""
    _guild, channel, sam = scene(discord_env, "sam")

    choices = await sam.autocomplete(channel, "imagine", "model", "", prompt="x")
    panel = await sam.slash(channel, "settings")

    assert [choice["value"] for choice in choices] == ["tiny"]
    assert panel.response is not None
    menus = [child for row in panel.response.message.components for child in row.children]
    (model_menu,) = [
        menu for menu in menus if isinstance(menu, discord.SelectMenu) and menu.custom_id == "settings:model"
    ]
    assert "x" not in [option.value for option in model_menu.options]
    assert "tiny" in [option.value for option in model_menu.options]
