"""The heartbeat the running bot writes, and ``python -m bot health`` reading it (Docker's HEALTHCHECK)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import simcord

from bot.application.service import ImagineService
from bot.jobs import Kind, Lane, Origin, RenderParams, Status
from bot.requests.preparation import Prepared
from bot.running.engine_supervisor import EngineSupervisor
from bot.running.health import (
    HEARTBEAT_NAME,
    STALE_AFTER_S,
    EngineState,
    Heartbeat,
    check_health,
    heartbeat_file,
    read_heartbeat,
    write_heartbeat,
)
from bot.running.maintenance import HEARTBEAT_JOB_ID, Maintenance
from config.settings import Settings
from tests.ahead import child_environment
from tests.conftest import ENGINE_TIMEOUT_S, make_settings, wait_until

ROOT = Path(__file__).resolve().parents[3]
NOW = 1_800_000_000.0
BEAT = Heartbeat(
    written_at=NOW - 5,
    pid=4321,
    worker_alive=True,
    engine=EngineState.READY,
    engine_detail="tiny on cpu",
    queued=2,
    running=1,
    last_finished_at=NOW - 600,
)
PARAMS = RenderParams(prompt="fox", negative_prompt="", model="tiny", width=64, height=64, steps=4, cfg=5.0, seed=1)


def _health(cwd: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = child_environment(**{"IMAGINE_DATA_DIR": str(cwd / "data"), **(env or {})})
    return subprocess.run(
        [sys.executable, *extra, "-m", "bot", "health"],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _written(beat: Heartbeat | None = None, text: str | None = None) -> Callable[[Path], None]:
    """Prepare a data folder: ``beat`` written as if ``NOW`` were the moment of writing, or ``text`` as is."""

    def write(data: Path) -> None:
        data.mkdir(parents=True, exist_ok=True)
        if beat is not None:
            shift = time.time() - NOW
            last = None if beat.last_finished_at is None else beat.last_finished_at + shift
            write_heartbeat(
                data / HEARTBEAT_NAME,
                dataclasses.replace(beat, written_at=beat.written_at + shift, last_finished_at=last),
            )
        if text is not None:
            (data / HEARTBEAT_NAME).write_text(text, encoding="utf-8")

    return write


@pytest.mark.parametrize(
    ("prepare", "code", "fragments"),
    [
        (
            _written(BEAT),
            0,
            [
                "healthy: worker running, engine ready (tiny on cpu), 2 queued, 1 running",
                "last job finished 10 min ago",
            ],
        ),
        (
            _written(dataclasses.replace(BEAT, engine=EngineState.FAILING, engine_detail="model 'x' did not load")),
            0,
            ["healthy: worker running, engine failing (model 'x' did not load)"],
        ),
        (_written(dataclasses.replace(BEAT, worker_alive=False)), 1, ["unhealthy: the worker loop has stopped"]),
        (_written(dataclasses.replace(BEAT, written_at=NOW - 300)), 1, ["unhealthy: the last heartbeat is 5 min old"]),
        (_written(), 1, ["unhealthy: no heartbeat at", "heartbeat.json"]),
        (_written(text="{half a file"), 1, ["unhealthy:", "is not a heartbeat"]),
        (_written(text='{"written_at": 1}'), 1, ["is not a heartbeat (the field", "is missing"]),
        (
            _written(text='{"written_at": 1, "pid": 1, "worker_alive": "yes", "engine": "ready", "engine_detail": ""}'),
            1,
            ["is not a heartbeat"],
        ),
    ],
    ids=["fresh", "fresh-engine-failing", "worker-stopped", "stale", "missing", "corrupt", "incomplete", "wrong-type"],
)
def test_health_reads_the_heartbeat(
    tmp_path: Path, prepare: Callable[[Path], None], code: int, fragments: list[str]
) -> None:
    """Fresh with a live worker is 0; stale, stopped, missing or corrupt is 1; always one line, no traceback."""
    prepare(tmp_path / "data")
    completed = _health(tmp_path)
    assert completed.returncode == code, completed.stdout + completed.stderr
    assert len(completed.stdout.splitlines()) == 1, completed.stdout
    for fragment in fragments:
        assert fragment in completed.stdout, completed.stdout
    assert "Traceback" not in completed.stderr


def test_health_never_exits_2_on_a_configuration_error(tmp_path: Path) -> None:
    """Docker reserves exit code 2: a broken configuration is unhealthy (1), named in one line."""
    (tmp_path / "bot.toml").write_text('modle = "tiny"\n', encoding="utf-8")
    completed = _health(tmp_path, env={"IMAGINE_CONFIG": str(tmp_path / "bot.toml")})
    assert completed.returncode == 1
    assert completed.stdout.startswith("unhealthy: invalid configuration:")
    assert "unknown key 'modle' (did you mean 'model'?)" in completed.stdout
    assert len(completed.stdout.splitlines()) == 1


def test_health_is_cheap(tmp_path: Path) -> None:
    """No torch, diffusers or discord.py is imported: the check costs an interpreter start and a file read."""
    _written(BEAT)(tmp_path / "data")
    started = time.perf_counter()
    completed = _health(tmp_path, "-X", "importtime")
    seconds = time.perf_counter() - started
    assert completed.returncode == 0, completed.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines() if "|" in line}
    heavy = {name for name in imported if name.split(".")[0] in {"torch", "diffusers", "transformers", "discord"}}
    assert not heavy
    assert seconds < 10  # about 0.4 s on a 2-core CPU; generous for a loaded machine


def test_heartbeat_round_trips_and_ages() -> None:
    """What is written is what is read; the same beat is healthy until three beats are missed."""
    assert Heartbeat.from_json(BEAT.to_json()) == BEAT
    assert dataclasses.replace(BEAT, last_finished_at=None).to_json().count("null") == 1


def test_freshness_boundary(tmp_path: Path) -> None:
    """Healthy up to STALE_AFTER_S after the beat, unhealthy after."""
    path = tmp_path / HEARTBEAT_NAME
    write_heartbeat(path, BEAT)
    assert check_health(path, now=BEAT.written_at + STALE_AFTER_S)[0] == 0
    assert check_health(path, now=BEAT.written_at + STALE_AFTER_S + 1)[0] == 1


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = ENGINE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_maintenance_writes_the_heartbeat(settings: Settings, engine: EngineSupervisor, tmp_path: Path) -> None:
    """A stable job id that writes at once; the file follows the worker: ready, a job finished, then stopped."""
    path = tmp_path / "heartbeat.json"
    service = await ImagineService.open(settings, engine=engine)
    maintenance = Maintenance(service.ledger, service.scheduler, engines=service.engines, heartbeat_path=path)
    try:
        service.start()
        await engine.wait_ready()
        apscheduler = maintenance.start()
        maintenance.stop()
        apscheduler = maintenance.start()  # again: the same job, replaced
        assert [job.id for job in apscheduler.get_jobs()].count(HEARTBEAT_JOB_ID) == 1
        await _until(path.exists, "the first heartbeat")
        first = read_heartbeat(path)
        assert first.worker_alive and first.engine is EngineState.READY and first.engine_detail == "tiny on cpu"
        assert (first.queued, first.running, first.last_finished_at, first.pid) == (0, 0, None, os.getpid())
        prepared = [Prepared(Kind.IMAGINE, "fox", PARAMS)]
        admitted = await service.scheduler.admit(7, prepared, origin=Origin(), lane=Lane.FAST)
        [job] = [item.job for item in admitted.jobs]
        service.worker.wake()

        async def finished() -> bool:
            return (await service.scheduler.get(job.id)).status is Status.COMPLETED

        deadline = time.monotonic() + ENGINE_TIMEOUT_S
        while not await finished():
            assert time.monotonic() < deadline, "the job did not finish"
            await asyncio.sleep(0.05)
        second = await maintenance.write_heartbeat()
        again = await maintenance.write_heartbeat()
        assert second is not None and again is not None
        assert second.last_finished_at is not None and second.last_finished_at >= first.written_at
        assert dataclasses.replace(again, written_at=second.written_at) == second  # repeating changes nothing else
        assert read_heartbeat(path) == again
        assert check_health(path)[0] == 0
    finally:
        maintenance.stop()
        await service.close()
    stopped = await maintenance.write_heartbeat()
    assert stopped is not None and not stopped.worker_alive
    code, line = check_health(path)
    assert code == 1 and "the worker loop has stopped" in line


@pytest.mark.slow
async def test_heartbeat_says_why_the_engine_cannot_start(data_dir: Path, tmp_path: Path) -> None:
    """An engine whose model cannot load is reported as failing, with its reason; the worker is still alive."""
    settings = make_settings(
        data_dir,
        database_path=tmp_path / "imagine.db",
        model="absent",
        models={"absent": {"source": "imaginebot-tests/absent-model"}},
    )
    service = await ImagineService.open(settings)
    maintenance = Maintenance(
        service.ledger, service.scheduler, engines=service.engines, heartbeat_path=tmp_path / "hb"
    )
    try:
        service.start()
        await _until(lambda: service.engine.fatal is not None, "the engine to give up")
        beat = await maintenance.write_heartbeat()
    finally:
        await service.close()
    assert beat is not None and beat.worker_alive
    assert beat.engine is EngineState.FAILING and "imaginebot-tests/absent-model" in beat.engine_detail


async def test_the_running_bot_writes_a_heartbeat(discord_env: simcord.Env, settings: Settings) -> None:
    """The bot started on (simulated) Discord writes its heartbeat, and health calls it healthy."""
    path = heartbeat_file(settings.data_dir)
    await wait_until(discord_env, lambda: path.exists() and read_heartbeat(path).worker_alive, what="a heartbeat")
    code, line = check_health(path)
    assert code == 0, line
