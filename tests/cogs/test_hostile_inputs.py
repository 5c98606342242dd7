"""Hostile requests through the real Discord stack: each is refused privately in one line that says what to change,
before anything is charged or stored."""

from __future__ import annotations

from pathlib import Path

import pytest
import simcord

from tests.conftest import scene
from tests.hostile import PROMPTS, SWEEPS


def _uploads(env: simcord.Env) -> set[Path]:
    """Every file under uploads/ (staging included); the session's tests share one data folder."""
    uploads = env.bot.settings.data_dir / "uploads"
    return {path for path in uploads.rglob("*") if path.is_file()} if uploads.exists() else set()


@pytest.fixture
def uploads_before(discord_env: simcord.Env) -> set[Path]:
    return _uploads(discord_env)


async def _nothing_happened(env: simcord.Env, uploads_before: set[Path]) -> None:
    store = env.bot.service.store
    assert await store.fetch_value("SELECT COUNT(*) FROM jobs") == 0
    assert await store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0
    assert _uploads(env) <= uploads_before


def _one_line_refusal(result: simcord.InteractionResult, fragment: str) -> None:
    assert result.ephemeral
    assert result.response is not None
    text = result.response.content
    assert text.startswith("⚠️ ")
    assert "\n" not in text
    assert "Traceback" not in text
    assert fragment in text, text


@pytest.mark.parametrize(("prompt", "fragment"), PROMPTS, ids=[f"prompt{i}" for i in range(len(PROMPTS))])
async def test_hostile_prompts_are_refused(
    discord_env: simcord.Env, uploads_before: set[Path], prompt: str, fragment: str
) -> None:
    """Nesting, huge and empty prompts, control characters and every flag past its limit."""
    _guild, channel, eve = scene(discord_env, "eve")

    result = await eve.slash(channel, "imagine", prompt=prompt)

    _one_line_refusal(result, fragment)
    await _nothing_happened(discord_env, uploads_before)


@pytest.mark.parametrize(("prompt", "axes", "fragment"), SWEEPS, ids=[f"sweep{i}" for i in range(len(SWEEPS))])
async def test_hostile_sweeps_are_refused(
    discord_env: simcord.Env, uploads_before: set[Path], prompt: str, axes: tuple[str, ...], fragment: str
) -> None:
    """Every swept value obeys its flag's limit; a sweep is refused as a whole before it is charged."""
    _guild, channel, eve = scene(discord_env, "eve")

    options = dict(zip(("x", "y", "z"), axes, strict=False))
    result = await eve.slash(channel, "sweep", prompt=prompt, **options)

    _one_line_refusal(result, fragment)
    await _nothing_happened(discord_env, uploads_before)


async def test_control_characters_are_dropped_from_an_accepted_prompt(discord_env: simcord.Env) -> None:
    """A prompt with control and invisible characters is queued without them."""
    _guild, channel, eve = scene(discord_env, "eve")

    result = await eve.slash(channel, "imagine", prompt="a fox\x00\x1b[31m\u202e in\u200b snow --steps 2")

    assert result.response is not None
    assert "queued" in result.response.content
    prompt = await discord_env.bot.service.store.fetch_value("SELECT prompt FROM jobs")
    assert prompt is not None
    assert not any(ord(char) < 32 or char in "\u202e\u200b\x7f" for char in prompt)
