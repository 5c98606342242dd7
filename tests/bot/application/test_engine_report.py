"""The engines as owners and moderators read them: a line per engine, a headline, lines cut to fit a message; the
moderator action that lists them; and telemetry and the metrics that carry one series per engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from bot.actors import Actor, MemberRoles
from bot.application.engine_report import EngineStatus, engine_line, engine_lines, engines_headline
from bot.application.service import ImagineService
from bot.application.telemetry import Telemetry
from bot.errors import NotModeratorError
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from web.metrics_route import MetricsExporter


def status(
    index: int = 0,
    *,
    device: str = "cuda:0",
    state: str = "ready",
    model: str = "sd15",
    loaded: tuple[str, ...] = ("sd15",),
    busy: bool = False,
    restarts: int = 0,
) -> EngineStatus:
    return EngineStatus(f"engine {index}", device, state, model, loaded, busy, restarts, 1000 + index)


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        (status(), "engine 0 on cuda:0: ready with sd15 · idle · 0 restarts"),
        (
            status(1, device="cuda:1", loaded=("sd15", "sdxl"), busy=True, restarts=1),
            "engine 1 on cuda:1: ready with sd15, sdxl · busy · 1 restart",
        ),
        (
            status(2, device="ray:2", state="starting", loaded=()),
            "engine 2 on ray:2: starting, loading sd15 · idle · 0 restarts",
        ),
        (
            status(state="failing", model="sdxl", loaded=(), restarts=3),
            "engine 0 on cuda:0: failing: cannot load sdxl · idle · 3 restarts",
        ),
        (
            status(device="cpu", state="down", loaded=(), busy=True, restarts=2),
            "engine 0 on cpu: down (not running) · busy · 2 restarts",
        ),
    ],
)
def test_engine_line(engine: EngineStatus, line: str) -> None:
    """Where it runs, its state with the models it holds or loads, busy or idle, and its restarts."""
    assert engine_line(engine) == line


@pytest.mark.parametrize(
    ("engines", "headline"),
    [
        ((), "no engine"),
        ((status(),), "1 engine: 1 ready, 0 busy, 0 restarts"),
        ((status(busy=True, restarts=1), status(1, state="down", loaded=())), "2 engines: 1 ready, 1 busy, 1 restart"),
        (tuple(status(i, restarts=i) for i in range(4)), "4 engines: 4 ready, 0 busy, 6 restarts"),
    ],
)
def test_engines_headline(engines: tuple[EngineStatus, ...], headline: str) -> None:
    """How many engines, how many are ready and busy, and their restarts together."""
    assert engines_headline(engines) == headline


LINE = len("• " + engine_line(status()))
"""One bulleted line of an engine numbered 0 to 9."""


@pytest.mark.parametrize(
    ("count", "max_chars", "shown", "more"),
    [
        (0, 100, 0, None),
        (2, 2 * LINE + 1, 2, None),
        (3, 3 * LINE + 2, 3, None),
        (3, 3 * LINE + 1, 2, "• … and 1 more"),
        (5, 2 * LINE + 30, 2, "• … and 3 more"),
        (9, LINE + 20, 1, "• … and 8 more"),
    ],
)
def test_engine_lines_fit(count: int, max_chars: int, shown: int, more: str | None) -> None:
    """Every line when they fit; else as many as fit with a last line counting the rest, all within max_chars."""
    engines = [status(index) for index in range(count)]
    lines = engine_lines(engines, max_chars, prefix="• ")
    assert lines[:shown] == ["• " + engine_line(engine) for engine in engines[:shown]]
    assert lines[shown:] == ([more] if more else [])
    assert len("\n".join(lines)) <= max_chars


def test_sixty_four_engines_fit_one_discord_message() -> None:
    """A large Ray cluster still answers /admin stats within Discord's 2,000 characters."""
    engines = [status(index, device=f"ray:{index}", loaded=("sd15", "sdxl")) for index in range(64)]
    lines = engine_lines(engines, 1700, prefix="• ")
    assert len("\n".join(lines)) <= 1700
    assert lines[-1].startswith("• … and ") and lines[-1].endswith(" more")
    assert len(lines) - 1 + int(lines[-1].split()[3]) == 64


# --- telemetry and metrics --------------------------------------------------------------------------------


class Engines:
    """A pool's answer to status(), fixed (the pool's own states are tested with real engines elsewhere)."""

    def __init__(self, *statuses: EngineStatus) -> None:
        self.statuses = list(statuses)

    def status(self) -> list[EngineStatus]:
        return list(self.statuses)


async def test_a_snapshot_carries_every_engine() -> None:
    """Restarts add up over the engines, ready means at least one is, and each engine is in the snapshot."""
    engines = (status(busy=True, restarts=2), status(1, device="cuda:1", state="starting", loaded=(), restarts=1))
    snapshot = await Telemetry(engines=Engines(*engines)).snapshot()
    assert snapshot.engines == engines
    assert (snapshot.engine_restarts, snapshot.engine_ready) == (3, True)
    down = await Telemetry(engines=Engines(status(state="down", loaded=()))).snapshot()
    assert not down.engine_ready


async def test_metrics_have_a_series_per_engine_in_both_formats() -> None:
    """imaginebot_engines counts them; up, busy and restarts carry engine and device labels; Prometheus's text and
    OpenMetrics both parse."""
    engines = (
        status(busy=True, restarts=2),
        status(1, device="cuda:1", state="failing", loaded=(), restarts=5),
    )
    exporter = MetricsExporter()
    exporter.collector.snapshot = await Telemetry(engines=Engines(*engines)).snapshot()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(exporter.registry).decode())
        for sample in family.samples
    }
    first = (("device", "cuda:0"), ("engine", "engine 0"))
    second = (("device", "cuda:1"), ("engine", "engine 1"))
    assert samples[("imaginebot_engines", ())] == 2
    assert [samples[("imaginebot_engine_up", labels)] for labels in (first, second)] == [1, 0]
    assert [samples[("imaginebot_engine_busy", labels)] for labels in (first, second)] == [1, 0]
    assert [samples[("imaginebot_engine_restarts_total", labels)] for labels in (first, second)] == [2, 5]
    assert samples[("imaginebot_engine_ready", ())] == 1
    families = {
        family.name: family.type for family in parse_openmetrics(generate_openmetrics(exporter.registry).decode())
    }
    assert families["imaginebot_engine_restarts"] == "counter" and families["imaginebot_engine_up"] == "gauge"


# --- the moderator action ---------------------------------------------------------------------------------


@pytest.fixture
async def quiet_service(tmp_path: Path) -> AsyncIterator[ImagineService]:
    """A service whose one engine never starts."""
    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path, device="cpu")  # type: ignore[call-arg]
    service = await ImagineService.open(settings, engine=EngineSupervisor(engine_config(settings)))
    yield service
    await service.close()


async def test_moderators_see_the_engines_and_members_do_not(quiet_service: ImagineService) -> None:
    """The console and a Manage Server member get each engine's status; a plain member is refused."""
    moderator = Actor.discord(1, guild_id=5, channel_id=6, roles=MemberRoles(manage_guild=True))
    for actor in (Actor.console(), moderator):
        [engine] = await quiet_service.admin.engines(actor)
        assert (engine.name, engine.device, engine.state, engine.busy, engine.restarts) == (
            "engine 0",
            "cpu",
            "down",
            False,
            0,
        )
        assert engine.model == "tiny" and engine.loaded_models == ()
    with pytest.raises(NotModeratorError):
        await quiet_service.admin.engines(Actor.discord(2, guild_id=5, channel_id=6, roles=MemberRoles()))


async def test_the_service_telemetry_reads_the_engine_pool(quiet_service: ImagineService) -> None:
    """The service's snapshot lists the pool's engines (not only the first)."""
    snapshot = await quiet_service.telemetry.snapshot()
    assert snapshot.engines == tuple(quiet_service.engines.status())
    assert [engine.name for engine in snapshot.engines] == ["engine 0"] and not snapshot.engine_ready
