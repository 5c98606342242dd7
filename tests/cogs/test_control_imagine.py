"""/imagine with a control image through simcord: a ControlNet grid with its cost shown, V1 keeps the control image,
and a refused control request is private and costs nothing."""

from __future__ import annotations

import io
import re

import pytest
import simcord
from PIL import Image, ImageDraw

from engine.metadata import read_parameters
from tests.conftest import posts, scene, wait_until


def _control_png() -> bytes:
    image = Image.new("RGB", (96, 64), "black")
    ImageDraw.Draw(image).rectangle((24, 12, 72, 52), fill="white")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def _jobs(env: simcord.Env) -> list[tuple[str, str, str]]:
    rows = await env.bot.service.store.fetch_all("SELECT kind, status, params FROM jobs ORDER BY id")
    return [(row[0], row[1], row[2]) for row in rows]


@pytest.mark.slow
async def test_imagine_with_a_control_image_posts_a_controlnet_grid_and_v1_keeps_it(discord_env: simcord.Env) -> None:
    """The queued message names the mode and the cost; the grid is the ControlNet's (its metadata says so); V1 of
    it is a control job again, from image 1, with the same control image, mode and weight."""
    _guild, channel, cleo = scene(discord_env, "cleo")

    result = await cleo.slash(
        channel,
        "imagine",
        prompt="a lighthouse --seed 3 --cw 0.8",
        control=("edges.png", _control_png()),
        control_mode="scribble",
    )

    assert result.response is not None
    queued = result.response.content
    assert "(ControlNet scribble) — queued" in queued
    shown = re.search(r"cost (\d+) credits \(balance (\d+)\)", queued)
    assert shown is not None
    assert await _debits(discord_env, cleo.id) == [-int(shown[1])]
    assert await discord_env.bot.service.ledger.balance(cleo.id) == int(shown[2])
    await wait_until(discord_env, lambda: bool(posts(channel)), what="the ControlNet grid")
    [post] = posts(channel)
    assert "**ControlNet** tiny-controlnet (scribble, --cw 0.8)" in post.embeds[0].description
    text = read_parameters(await post.attachments[0].read()) or ""
    assert 'ControlNet 0: "Module: scribble, Model: tiny-controlnet, Weight: 0.8"' in text
    [(kind, status, _params)] = await _jobs(discord_env)
    assert (kind, status) == ("control", "completed")

    clicked = await cleo.click(post, label="V1")
    assert clicked.response is not None
    assert "(ControlNet scribble) — queued" in clicked.response.content
    await wait_until(discord_env, lambda: len(posts(channel)) == 2, what="the variation's grid")
    assert [(kind, status) for kind, status, _params in await _jobs(discord_env)] == [("control", "completed")] * 2
    parent_id, child_id = await _job_ids(discord_env)
    parent_job = await discord_env.bot.service.scheduler.get(parent_id)
    child_job = await discord_env.bot.service.scheduler.get(child_id)
    assert child_job.params.control_image == parent_job.params.control_image != ""
    assert (child_job.params.control_mode, child_job.params.control_weight) == ("scribble", 0.8)
    images = await discord_env.bot.service.scheduler.images(parent_job.id)
    assert child_job.params.init_image == images[0].path
    assert child_job.parent_id == parent_job.id


async def _debits(env: simcord.Env, user_id: int) -> list[int]:
    rows = await env.bot.service.store.fetch_all(
        "SELECT delta FROM ledger WHERE user_id = ? AND kind = 'debit' ORDER BY id", (user_id,)
    )
    return [row[0] for row in rows]


async def _job_ids(env: simcord.Env) -> list[int]:
    rows = await env.bot.service.store.fetch_all("SELECT id FROM jobs ORDER BY id")
    return [row[0] for row in rows]


@pytest.mark.parametrize(
    ("prompt", "mode", "fragment"),
    [
        ("a fox --cw 2.5", "canny", "`--cw 2.5` is out of range"),
        ("a fox", "depth", "control mode depth needs a depth estimator"),
        ("a fox --controlnet tiny-controlnet-sdxl", None, "is for sdxl models, but model `tiny` is sd15"),
    ],
)
async def test_a_refused_control_request_is_private_and_uncharged(
    discord_env: simcord.Env, prompt: str, mode: str | None, fragment: str
) -> None:
    """Refused before the attachment is downloaded: an ephemeral message saying what to change, no job, no debit."""
    _guild, channel, dan = scene(discord_env, "dan")
    balance = await discord_env.bot.service.ledger.balance(dan.id)
    options: dict[str, object] = {"control": ("c.png", _control_png())}
    if mode is not None:
        options["control_mode"] = mode

    result = await dan.slash(channel, "imagine", prompt=prompt, **options)

    assert result.ephemeral and not result.deferred
    assert result.response is not None and fragment in result.response.content
    assert await _jobs(discord_env) == []
    assert await discord_env.bot.service.ledger.balance(dan.id) == balance
    store = discord_env.bot.service.store
    assert await store.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'") == 0
