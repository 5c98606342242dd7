"""Two engines behind one bot, as owners and moderators see them: ``/admin stats`` in Discord, the web's admin
stats and ``/metrics`` list both (device, state, models, busy, restarts), and show the one that renders as busy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import httpx
import pytest
import simcord
from prometheus_client.parser import text_string_to_metric_families

from bot.actors import Actor
from bot.application.service import ImagineService
from bot.discord_surface.discord_bot import ImagineBot
from bot.jobs import Origin
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from tests.conftest import ENGINE_TIMEOUT_S, make_settings, release, submit_prompt
from tests.web.conftest import bearer, issue_key
from web.app import create_app

pytestmark = pytest.mark.slow

MEMBERS = [Actor(user_id, Origin(source="cli")) for user_id in (611, 612)]


@pytest.fixture(scope="module")
def second_engine(data_dir: Path) -> Iterator[EngineSupervisor]:
    """A second engine process beside the session's, on the CPU by name (the session's runs on ``auto``)."""
    engine = EngineSupervisor(engine_config(make_settings(data_dir, device="cpu")), start_timeout_s=ENGINE_TIMEOUT_S)
    engine.spawn()
    yield engine
    engine.stop()


@dataclass
class Surfaces:
    """One service on both engines, the Discord bot on it, a moderator there, and the web app."""

    service: ImagineService
    env: simcord.Env
    channel: simcord.ChannelHandle
    moderator: simcord.MemberActor
    web: httpx.AsyncClient
    key: str


@pytest.fixture
async def surfaces(
    data_dir: Path, tmp_path: Path, engine: EngineSupervisor, second_engine: EngineSupervisor
) -> AsyncIterator[Surfaces]:
    settings = make_settings(data_dir, database_path=tmp_path / "imagine.db")
    env: simcord.Env | None = None

    async def external_wait(awaitable: Awaitable[Any], *, reason: str) -> Any:
        """The workers wait on the engines through simcord, which then knows the bot is idle, not stuck."""
        assert env is not None, "the workers start with the bot"
        return await env.external_wait(awaitable, reason=reason)

    service = await ImagineService.open(settings, engine=[engine, second_engine], external_wait=external_wait)
    bot = ImagineBot(settings, service=service)
    env = simcord.Env(bot)
    await env.start()  # the bot starts the service: both workers run
    guild = env.create_guild()
    channel = guild.create_text_channel("art")
    mods = guild.create_role("Mods", permissions=discord.Permissions(manage_guild=True))
    moderator = guild.add_member(env.create_user("mod"), roles=[mods])
    transport = httpx.ASGITransport(app=create_app(service, settings))
    try:
        await asyncio.wait_for(asyncio.gather(engine.wait_ready(), second_engine.wait_ready()), ENGINE_TIMEOUT_S)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=120) as web:
            yield Surfaces(service, env, channel, moderator, web, await issue_key(service, 4444, moderator=True))
    finally:
        await env.shutdown()
        await release(bot)


async def engine_samples(web: httpx.AsyncClient) -> dict[tuple[str, str, str], float]:
    """The per-engine samples of one scrape: (name, engine, device) → value; the pool's count under ("", "", "")."""
    response = await web.get("/metrics")
    assert response.status_code == 200, response.text
    samples: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "imaginebot_engines":
                samples[(sample.name, "", "")] = sample.value
            elif "engine" in sample.labels:
                samples[(sample.name, sample.labels["engine"], sample.labels["device"])] = sample.value
    return samples


async def test_every_surface_lists_both_engines(surfaces: Surfaces, engine: EngineSupervisor) -> None:
    """Both engines ready and idle in /admin stats, the web's admin stats and /metrics, each on its own device (the
    session's engine may hold another tiny model and have restarted for earlier tests: read from it)."""
    first, held, restarts = engine.config.device, sorted(engine.loaded_models), engine.restarts
    assert held
    stats = await surfaces.moderator.slash(surfaces.channel, "admin stats")
    assert stats.ephemeral and stats.response is not None
    text = stats.response.content
    assert "**Last 24 h:** 0 jobs from 0 members" in text
    assert f"**Engines:** 2 engines: 2 ready, 0 busy, {restarts} restart" in text
    assert f"• engine 0 on {first}: ready with {', '.join(held)} · idle · {restarts} restart" in text
    assert "• engine 1 on cpu: ready with tiny · idle · 0 restarts" in text

    answer = await surfaces.web.get("/api/v1/admin/stats", headers=bearer(surfaces.key))
    assert answer.status_code == 200, answer.text
    assert answer.json()["jobs"] == 0
    assert [
        (item["name"], item["device"], item["state"], item["loaded_models"], item["busy"], item["restarts"])
        for item in answer.json()["engines"]
    ] == [("engine 0", first, "ready", held, False, restarts), ("engine 1", "cpu", "ready", ["tiny"], False, 0)]

    samples = await engine_samples(surfaces.web)
    assert samples[("imaginebot_engines", "", "")] == 2
    for name, device, restarted in (("engine 0", first, restarts), ("engine 1", "cpu", 0)):
        assert samples[("imaginebot_engine_up", name, device)] == 1
        assert samples[("imaginebot_engine_busy", name, device)] == 0
        assert samples[("imaginebot_engine_restarts_total", name, device)] == restarted


async def _busy_engines(surfaces: Surfaces) -> tuple[list[bool], list[float]]:
    """Which engines the moderator's view shows busy, and each engine's imaginebot_engine_busy, read now."""
    shown = [engine.busy for engine in await surfaces.service.admin.engines(Actor.console())]
    samples = await engine_samples(surfaces.web)
    return shown, [value for (name, *_), value in samples.items() if name == "imaginebot_engine_busy"]


async def test_engines_rendering_show_as_busy_then_idle(surfaces: Surfaces) -> None:
    """While jobs render, the moderator's view and the metrics show the busy engines; once done, both are idle."""
    service = surfaces.service
    submitted = [await submit_prompt(service, member, "a lighthouse --steps 20 --seed 4") for member in MEMBERS]
    seen_busy, seen_in_metrics = False, False
    async with asyncio.timeout(ENGINE_TIMEOUT_S):
        while True:
            shown, metrics = await _busy_engines(surfaces)
            assert len(shown) == len(metrics) == 2
            seen_busy, seen_in_metrics = seen_busy or any(shown), seen_in_metrics or any(metrics)
            jobs = [await service.scheduler.get(item.job.id) for item in submitted]
            if all(job.status.terminal for job in jobs):
                break
            await asyncio.sleep(0.01)
    assert seen_busy and seen_in_metrics
    assert await _busy_engines(surfaces) == ([False, False], [0, 0])
    stats = await surfaces.moderator.slash(surfaces.channel, "admin stats")
    assert stats.response is not None
    assert "**Engines:** 2 engines: 2 ready, 0 busy" in stats.response.content
    assert "2 jobs from 2 members — 2 completed" in stats.response.content
