"""Shared fixtures: isolated settings, one real engine process for the session, a simcord Discord, and commands
run ahead of the tests that check them (see :mod:`tests.ahead`)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import itertools
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import discord
import pytest
import simcord
from simcord import interactions as sim_interactions
from simcord.backend import serializers

from bot.actors import Actor
from bot.application.admitted import Submitted
from bot.application.service import ImagineService
from bot.discord_surface.discord_bot import ImagineBot
from bot.jobs import Lane
from bot.operations.logs import RedactSecrets
from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from bot.storage.store import Store
from config.settings import Settings
from tests.ahead import MARKER, AheadRunner, Ran

ENGINE_TIMEOUT_S = 120.0

# One compute thread for torch in this process and in every engine and command it starts (they inherit the
# environment; none of the modules above imports torch): on a 2-core machine the tests, the engine and a command
# run ahead compete for the cores, and OpenMP threads that spin waiting for a descheduled sibling make a tiny render
# several times slower than one thread (measured: engine tests 77 s with two threads beside one busy process, 35 s
# with one; 25 s against 31 s on an idle machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def isolate_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No IMAGINE_* variable, .env or config/bot.toml from the developer's machine leaks into a test."""
    for name in list(os.environ):
        if name.startswith("IMAGINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IMAGINE_CONFIG", os.devnull)  # no TOML file
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # `run` serves the web on port 7860 by default: the tests that run the bot turn it on themselves, each on a free
    # port, so parallel commands never race for one port and "no surface configured" stays testable.
    monkeypatch.setenv("IMAGINE_WEB__ENABLED", "false")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_environment(monkeypatch)


_AHEAD = AheadRunner()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``ahead`` run last, so their commands have the whole session to finish in the background."""
    items.sort(key=lambda item: item.get_closest_marker(MARKER) is not None)  # stable: each group keeps its order


@pytest.fixture(scope="session", autouse=True)
def _commands_ahead(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Start the commands of every collected test marked ``ahead``, in collection order, in the background."""
    for item in request.session.items:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            continue
        folder = tmp_path_factory.mktemp(re.sub(r"\W", "_", item.name)[:30], numbered=True)
        params = dict(item.callspec.params) if hasattr(item, "callspec") else {}
        with pytest.MonkeyPatch.context() as monkeypatch:  # the environment the test itself would see
            isolate_environment(monkeypatch)
            _AHEAD.schedule(item.nodeid, folder, marker.args[0](folder, params))
    _AHEAD.start()
    yield
    _AHEAD.stop()


@pytest.fixture(scope="session", autouse=True)
def _engine_started_early(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Start the session's engine before the first test when any selected test uses it: its seconds of imports
    then overlap the tests that run before the first one that needs it."""
    if any("engine" in getattr(item, "fixturenames", ()) for item in request.session.items):
        _session_engine(tmp_path_factory)
    yield
    if _SESSION_ENGINE is not None:
        _SESSION_ENGINE.stop()


@pytest.fixture
def ran(request: pytest.FixtureRequest) -> Ran:
    """The finished commands of this ``ahead`` test (waiting for them if they still run)."""
    return _AHEAD.result(request.node.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if len(_AHEAD):
        terminalreporter.write_line(
            f"commands run ahead: {len(_AHEAD)} tests' commands ran {_AHEAD.ran_s:.1f} s in the background; "
            f"tests waited {_AHEAD.waited_s:.1f} s for them"
        )


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings on the tiny model. A new ``database_path`` gets job ids of its own (see :func:`start_job_ids_apart`)."""
    values: dict[str, object] = {"model": "tiny", "data_dir": data_dir, "log_level": "INFO"}
    values.update(overrides)
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    if "database_path" in overrides and not settings.database_file.exists():
        start_job_ids_apart(settings.database_file)
    return settings


def step_priced_settings(data_dir: Path, database_path: Path, enabled_models: list[str]) -> Settings:
    """Settings where one credit buys one 64×64 image step (so a tiny job's price shows its work), with 1000 free
    credits and ``enabled_models`` for members."""
    from config.policy import DEFAULT_TIERS

    return make_settings(
        data_dir,
        database_path=database_path,
        credits={"unit_pixels": 64 * 64, "unit_steps": 1},
        tiers={**DEFAULT_TIERS, "free": DEFAULT_TIERS["free"].model_copy(update={"allowance": 1000})},
        enabled_models=enabled_models,
    )


_JOB_ID_BLOCKS = itertools.count(1)
JOB_IDS_PER_DATABASE = 100_000


def start_job_ids_apart(database: Path) -> None:
    """Create ``database`` with its jobs numbered from a block no other test database uses.

    The session shares one engine process, and the engine and its supervisor know jobs by id: two tests' job 1
    must never meet there (a late result or a kept cancel of one would land on the other). The database is a copy
    of one migrated for the session (migrating each test's own costs about 15 ms, hundreds of times).
    """
    first = next(_JOB_ID_BLOCKS) * JOB_IDS_PER_DATABASE
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_database(), database)
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (first,))


@functools.cache
def _migrated_database() -> Path:
    """An empty database at the current schema, made by the bot's own :meth:`Store.open`, for this process."""
    folder = Path(tempfile.mkdtemp(prefix="imaginebot-tests-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    database = folder / "migrated.db"

    async def create() -> None:
        store = await Store.open(database)
        await store.close()

    worker = threading.Thread(target=asyncio.run, args=(create(),), name="test-database")  # no loop may be running
    worker.start()
    worker.join()
    if not database.is_file() or Path(f"{database}-wal").exists():
        raise RuntimeError(f"the migrated test database at {database} was not closed cleanly")
    return database


_SESSION_DATA_DIR: Path | None = None
_SESSION_ENGINE: EngineSupervisor | None = None


def _session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    global _SESSION_DATA_DIR
    if _SESSION_DATA_DIR is None:
        _SESSION_DATA_DIR = tmp_path_factory.mktemp("data")
    return _SESSION_DATA_DIR


def _session_engine(tmp_path_factory: pytest.TempPathFactory) -> EngineSupervisor:
    """The session's engine, started (not yet ready) on first use."""
    global _SESSION_ENGINE
    if _SESSION_ENGINE is None:
        settings = make_settings(_session_data_dir(tmp_path_factory))
        _SESSION_ENGINE = EngineSupervisor(engine_config(settings), start_timeout_s=ENGINE_TIMEOUT_S)
        _SESSION_ENGINE.spawn()
    return _SESSION_ENGINE


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder for the session, shared with the session's engine (images must land under it)."""
    return _session_data_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> EngineSupervisor:
    """A real engine process on the tiny model, shared by every test that needs one: each spawned engine pays the
    torch and diffusers import, so one for the session keeps the suite fast. Tests that kill or reconfigure it
    restore it; each test has a database of its own. Its data folder is the session's ``data_dir``. It is stopped
    once, at the end of the session (``_engine_started_early``)."""
    return _session_engine(tmp_path_factory)


@pytest.fixture
def in_process_cli() -> Iterator[None]:
    """For a test that runs ``bot.operations.cli.main`` in this process and checks what it wrote to stderr.

    ``main`` points the root logger at this test's captured stderr, at its own level. The session's engine, when
    it is starting (it starts before the first test), logs each start-up phase from its reader thread, which would
    land in that capture: it is ready first. Afterwards the root logger gets its level back and loses the handler
    ``main`` added, whose stream pytest closes."""
    engine = _SESSION_ENGINE
    if engine is not None and engine.alive and engine.ready is None and engine.fatal is None:
        asyncio.run(engine.wait_ready())
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    root.handlers[:] = [
        handler
        for handler in root.handlers
        if handler in before or not any(isinstance(found, RedactSecrets) for found in handler.filters)
    ]
    root.setLevel(level)


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    """Tiny model, the module's data folder, and a database of this test's own."""
    return make_settings(data_dir, database_path=tmp_path / "imagine.db")


@pytest.fixture
async def discord_env(settings: Settings, engine: EngineSupervisor) -> AsyncIterator[simcord.Env]:
    """The real bot on simcord's in-memory Discord, with the module's engine."""
    bot = ImagineBot(settings, engine=engine)
    env = simcord.Env(bot)
    bot.external_wait = env.external_wait
    await env.start()
    try:
        yield env
    finally:
        await env.shutdown()
        current = env.bot
        if isinstance(current, ImagineBot):
            await release(current)
        env._raise_errors_since(env._errors_acknowledged)


def scene(env: simcord.Env, member: str) -> tuple[simcord.GuildHandle, simcord.ChannelHandle, simcord.MemberActor]:
    """A server with an #art channel and one member."""
    guild = env.create_guild()
    channel = guild.create_text_channel("art")
    return guild, channel, guild.add_member(env.create_user(member))


def posts(channel: simcord.ChannelHandle) -> list[discord.Message]:
    """Messages of the channel that carry an image, oldest first."""
    return [message for message in channel.history() if message.attachments]


async def release(bot: ImagineBot) -> None:
    """simcord detaches a bot without calling bot.close(): stop APScheduler and close the database here, or
    their threads outlive the test session."""
    if bot._service is not None:
        await bot._service.close()


async def wait_until(
    env: simcord.Env, condition: Callable[[], bool], *, limit_s: float = ENGINE_TIMEOUT_S, what: str = "condition"
) -> None:
    """Let the bot work (the engine renders in real time) until ``condition`` holds.

    A real-time timer of the bot (APScheduler's jobs, a retry loop) makes simcord advance its virtual clock and
    settle the bot within 5 s; while the engine renders on a busy 2-core machine that settling can take longer, and
    simcord then reports "did not settle" although nothing is wrong. The advance keeps running, so waiting goes on
    until ``condition`` holds or ``limit_s`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        try:
            await env.settle()
        except TimeoutError:
            if loop.time() > deadline:
                raise
        if condition():
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}\n{env.transcript()}")
        await asyncio.sleep(0.05)


def emit_clicks(
    env: simcord.Env,
    message: discord.Message,
    custom_id: str,
    *,
    user_id: int,
    guild_id: int | None,
    channel_id: int | None = None,
    times: int = 1,
    values: list[str] | None = None,
) -> None:
    """Deliver raw button presses (or, with ``values``, select choices) without waiting between them and without
    checking them against the component (a double-clicking member, a bot, or a crafted interaction: ``guild_id``
    None and a DM ``channel_id`` claim a press from outside the server)."""
    stored = env.backend.get_message(message.channel.id, message.id)
    data: dict[str, object] = {"custom_id": custom_id, "component_type": 2}
    if values is not None:
        data.update(component_type=3, values=values)
    for _ in range(times):
        record, payload = sim_interactions.base_payload(
            env.backend,
            type=3,
            channel_id=stored.channel_id if channel_id is None else channel_id,
            guild_id=guild_id,
            user_id=user_id,
            data=data,
        )
        payload["message"] = dict(serializers.message_payload(env.backend, stored))
        record.source_message_id = stored.id
        env.backend.emit("INTERACTION_CREATE", payload)


async def submit_prompt(service: ImagineService, actor: Actor, prompt: str, *, lane: Lane | None = None) -> Submitted:
    """Prepare a prompt for ``actor`` and submit its first job, as a surface does; the job as admitted."""
    prepared = await service.prepare(actor, prompt)
    admitted = await service.submit(actor, prepared[:1], lane=lane)
    return admitted.jobs[0]
