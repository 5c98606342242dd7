"""Crafted describe buttons: ``ibd:<job>:<i>`` pressed where the describe result is not shown (a DM, another
server, another channel of the same server) queues nothing and charges nothing; the real button still works."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import simcord
from PIL import Image

from config.settings import Settings
from tests.conftest import emit_clicks, make_settings, posts, scene, wait_until


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """The tiny models, and the tiny BLIP for /describe."""
    return make_settings(data_dir, database_path=tmp_path / "imagine.db", describe={"source": "tiny:blip"})


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), "purple").save(buffer, "PNG")
    return buffer.getvalue()


async def counts(env: simcord.Env) -> tuple[int, int]:
    """(job rows, ledger debits)."""
    store = env.bot.service.store
    jobs = int(await store.fetch_value("SELECT COUNT(*) FROM jobs"))
    debits = int(await store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'"))
    return jobs, debits


@pytest.mark.slow
async def test_a_crafted_describe_button_works_only_where_its_result_is_shown(discord_env: simcord.Env) -> None:
    """A DM, another server's channel and a private channel of the same server: refused as if the job did not exist,
    no suggestion leaked, nothing queued or charged; the same press where the post is shown queues /imagine."""
    guild, channel, ann = scene(discord_env, "ann")
    result = await ann.slash(channel, "describe", image=("photo.png", png()))
    assert result.response is not None and "queued" in result.response.content
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the describe post")
    post = posts(channel)[-1]
    job_id = int(await discord_env.bot.service.store.fetch_value("SELECT MAX(id) FROM jobs WHERE kind = 'describe'"))
    suggestion = str(
        await discord_env.bot.service.store.fetch_value(
            "SELECT prompt FROM describe_suggestions WHERE job_id = ? AND idx = 0", (job_id,)
        )
    )
    before = await counts(discord_env)

    drifter = discord_env.create_user("drifter")
    other_guild, other_channel, eve = scene(discord_env, "eve")
    staff_only = guild.create_text_channel("staff")
    mallory = guild.add_member(discord_env.create_user("mallory"))
    crafted = f"ibd:{job_id}:0"
    seen = len(discord_env.http_requests)
    emit_clicks(discord_env, post, crafted, user_id=drifter.id, guild_id=None, channel_id=drifter.dm_channel.id)
    emit_clicks(discord_env, post, crafted, user_id=eve.id, guild_id=other_guild.id, channel_id=other_channel.id)
    emit_clicks(discord_env, post, crafted, user_id=mallory.id, guild_id=guild.id, channel_id=staff_only.id)
    await discord_env.settle()

    assert await counts(discord_env) == before
    answers = discord_env.http_requests[seen:]
    refusals = [str(r.json) for r in answers if r.path.endswith("/callback") and r.json]
    assert sum("does not exist" in text or "inside servers only" in text for text in refusals) == 3, refusals
    assert not any(suggestion in text for text in refusals)

    emit_clicks(discord_env, post, crafted, user_id=mallory.id, guild_id=guild.id)  # where the post is shown
    await discord_env.settle()
    jobs, debits = await counts(discord_env)
    assert (jobs, debits) == (before[0] + 1, before[1] + 1)
