"""The engine process through the bot's supervisor: render, progress, heartbeats, crash, cancel, a broken model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.errors import EngineCrashedError
from bot.running.engine_supervisor import EngineSupervisor
from engine.metadata import read_parameters
from engine.protocol import Heartbeat, Progress, RenderTask, TaskFailed
from tests.ahead import Command, Ran, ahead
from tests.engine.rendering import RenderFailedError, render_one, tiny_task

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


async def test_render_writes_pngs_with_metadata_and_reports_progress(engine: EngineSupervisor, data_dir: Path) -> None:
    """Each step reports progress; each image is a PNG under data/ with the A1111 parameters chunk, their grid a JPEG
    with the same text in its EXIF user comment."""
    ready = await engine.wait_ready()
    assert ready.device == "cpu"
    steps: list[int] = []

    def on_progress(progress: Progress) -> None:
        steps.append(progress.step)

    done = await render_one(engine, tiny_task(data_dir, 101), on_progress)
    await asyncio.sleep(0)
    assert steps == [1, 2, 3, 4]
    assert len(done.paths) == 2
    for path, seed in zip(done.paths, done.seeds, strict=True):
        assert Path(path).is_relative_to(data_dir)
        with Image.open(path) as image:
            assert image.size == (64, 48)
        text = read_parameters(Path(path).read_bytes())
        assert text == (
            "a red fox\nNegative prompt: blur\n"
            f"Steps: 4, Sampler: Euler a, CFG scale: 5, Seed: {seed}, Size: 64x48, Model: tiny"
        )
    assert done.grid_path == str(Path(done.paths[0]).with_name("grid.jpg"))
    with Image.open(done.grid_path) as grid:
        assert (grid.format, grid.size) == ("JPEG", (128, 48))  # two images side by side
    assert read_parameters(Path(done.grid_path).read_bytes()) == (
        "a red fox\nNegative prompt: blur\n"
        f"Steps: 4, Sampler: Euler a, CFG scale: 5, Seed: {done.seeds[0]}, Size: 64x48, Model: tiny"
    )


async def test_same_seed_same_pixels_regardless_of_batch(engine: EngineSupervisor, data_dir: Path) -> None:
    """Image i depends only on its own seed: redoing one image of a grid gives the same pixels."""
    batch = await render_one(engine, tiny_task(data_dir, 102, seeds=(11, 12, 13, 14)))
    single = await render_one(engine, tiny_task(data_dir, 103, seeds=(13,)))
    again = await render_one(engine, tiny_task(data_dir, 104, seeds=(11, 12, 13, 14)))
    with Image.open(batch.paths[0]) as a, Image.open(again.paths[0]) as b:
        assert a.tobytes() == b.tobytes()
    with Image.open(batch.paths[2]) as a, Image.open(single.paths[0]) as b:
        difference = max(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes(), strict=True))
        assert difference <= 2  # batched matmuls may round differently in the last bit


async def test_output_outside_data_dir_is_refused(engine: EngineSupervisor, tmp_path: Path, data_dir: Path) -> None:
    """The engine writes only under data/."""
    task = tiny_task(data_dir, 105)
    outside = RenderTask(**{**task.__dict__, "output_dir": str(tmp_path / "elsewhere")})
    with pytest.raises(RenderFailedError) as caught:
        await render_one(engine, outside)
    assert caught.value.reason == "bad_input"
    assert not (tmp_path / "elsewhere").exists()


async def test_cancel_stops_a_running_job_early(engine: EngineSupervisor, data_dir: Path) -> None:
    """A Cancel arriving mid-job stops it within a step or two."""
    steps: list[int] = []

    def on_progress(progress: Progress) -> None:
        steps.append(progress.step)
        if progress.step == 2:
            asyncio.get_running_loop().create_task(engine.cancel(106))

    with pytest.raises(RenderFailedError) as caught:
        await render_one(engine, tiny_task(data_dir, 106, steps=60), on_progress)
    assert caught.value.reason == "cancelled"
    assert max(steps) < 60


async def test_killed_engine_fails_the_job_keeps_a_cancel_made_while_it_restarts_and_comes_back(
    engine: EngineSupervisor, data_dir: Path
) -> None:
    """SIGKILL mid-job: the job fails with EngineCrashedError. A cancel that arrives while render_batch waits for
    the restarting engine is kept: that task is never sent. The next render starts a new engine. (One restart
    serves both: each costs the seconds of the engine's imports.)"""
    await engine.wait_ready()
    old_pid = engine.pid

    def on_progress(progress: Progress) -> None:
        if progress.step == 1:
            engine.kill()

    with pytest.raises(EngineCrashedError):
        await render_one(engine, tiny_task(data_dir, 107, steps=40), on_progress)
    assert not engine.alive and engine.ready is None  # gone at once, though perhaps not reaped yet
    steps: list[int] = []
    rendering = asyncio.create_task(
        engine.render_batch([tiny_task(data_dir, 113, steps=8)], lambda progress: steps.append(progress.step))
    )
    await asyncio.sleep(0.2)
    assert not rendering.done()  # waiting for the crash backoff and the new engine
    await engine.cancel(113)
    (result,) = await asyncio.wait_for(rendering, 120)
    done = await render_one(engine, tiny_task(data_dir, 108))  # the new engine has taken everything sent before this
    assert isinstance(result, TaskFailed) and result.reason == "cancelled"
    assert steps == []
    assert not (data_dir / "images" / "113").exists()
    assert engine.pid != old_pid
    assert engine.restarts >= 1
    assert len(done.paths) == 2


def _start_probe(
    folder: Path, model: str, source: str, timeout_s: float, *, retry_timeout_s: float | None = None, **env: str
) -> Command:
    """:mod:`tests.engine.start_probe` for an engine of ``model`` on ``source`` with ``folder`` as its data folder."""
    arguments = [sys.executable, "-m", "tests.engine.start_probe", model, source, "sd15", str(folder), str(timeout_s)]
    if retry_timeout_s is not None:
        arguments.append(str(retry_timeout_s))
    return Command(arguments, folder, {**os.environ, "PYTHONPATH": str(ROOT), **env})


def _probed(ran: Ran) -> dict[str, Any]:
    """How the probed engine start went (see :mod:`tests.engine.start_probe`)."""
    (completed,) = ran.results
    assert completed.returncode == 0, completed.stderr[-4000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _broken_model(folder: Path, params: dict[str, Any]) -> list[Command]:
    model = folder / "broken-model"
    params["prepare"](model)
    return [_start_probe(folder, "broken", str(model), 120)]


@pytest.mark.parametrize(
    ("prepare", "fragment"),
    [
        (lambda folder: None, "is not a folder"),
        (lambda folder: folder.mkdir(), "has no model_index.json"),
        (lambda folder: (folder.mkdir(), (folder / "model_index.json").write_text("{not json")), "did not load"),
    ],
)
@ahead(_broken_model)
def test_broken_model_fails_at_start_with_a_clear_message(ran: Ran, prepare, fragment: str) -> None:  # type: ignore[no-untyped-def]
    """A missing or corrupt model folder is reported when the engine starts, not at the first job."""
    result = _probed(ran)
    assert "EngineStartError" in result["error"], result
    assert fragment in result["message"]
    assert "broken" in result["message"]


async def test_job_past_its_timeout_fails_alone_and_the_engine_restarts(
    engine: EngineSupervisor, data_dir: Path
) -> None:
    """A job running past job_timeout_s is failed with reason timeout; the engine is killed and comes back."""
    await engine.wait_ready()
    old_pid, limit = engine.pid, engine.job_timeout_s
    engine.job_timeout_s = 0.5
    try:
        with pytest.raises(RenderFailedError) as caught:
            await render_one(engine, tiny_task(data_dir, 109, steps=150, seeds=(1, 2, 3, 4)))
    finally:
        engine.job_timeout_s = limit
    assert caught.value.reason == "timeout"
    assert "fewer steps" in str(caught.value)
    done = await render_one(engine, tiny_task(data_dir, 110))
    assert engine.pid != old_pid
    assert len(done.paths) == 2


async def test_an_engine_reaped_elsewhere_is_replaced_not_written_to(engine: EngineSupervisor, data_dir: Path) -> None:
    """A dead engine whose exit another waiter collected (two threads in waitpid: the loser sees no exit) is still
    dead to the supervisor: the next render starts a fresh engine instead of writing into a broken pipe."""
    await engine.wait_ready()
    old_pid = engine.pid
    assert old_pid is not None
    (process,) = [child for child in multiprocessing.active_children() if child.pid == old_pid]
    reaping = asyncio.create_task(asyncio.to_thread(os.waitpid, old_pid, 0))
    await asyncio.sleep(0.2)  # this waiter is first in line when the engine dies
    os.kill(old_pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # the supervisor's own waiter won after all
        await reaping
    try:
        done = await render_one(engine, tiny_task(data_dir, 112))
    finally:
        popen = process._popen  # type: ignore[attr-defined]
        if popen.returncode is None:  # record the exit as the winning waiter would, for multiprocessing's clean-up
            popen.returncode = -signal.SIGKILL
    assert engine.pid != old_pid
    assert len(done.paths) == 2


async def test_heartbeats_cover_loading_a_model_rendering_and_writing(engine: EngineSupervisor, data_dir: Path) -> None:
    """While a task's model loads (no denoising step yet), the engine still says every heartbeat_s that it works."""
    await render_one(engine, tiny_task(data_dir, 115))  # the start-up model is loaded, tiny-sdxl is not
    # Loading a tiny model that is on disk can take 0.1 s, two beats; building it, as on its first use, about 1 s.
    shutil.rmtree(data_dir / "models" / "tiny-sdxl", ignore_errors=True)
    beats: list[tuple[float, str]] = []

    def on_heartbeat(heartbeat: Heartbeat) -> None:
        assert heartbeat.job_id == 116
        beats.append((time.monotonic(), heartbeat.phase))

    (done,) = await engine.render_batch(
        [replace(tiny_task(data_dir, 116), model="tiny-sdxl")], on_heartbeat=on_heartbeat, heartbeat_s=0.05
    )
    await asyncio.sleep(0)
    phases = list(dict.fromkeys(phase for _, phase in beats))
    expected = ["queued", "loading model tiny-sdxl", "rendering", "writing files"]
    assert phases == [phase for phase in expected if phase in phases]
    loading = [at for at, phase in beats if phase == "loading model tiny-sdxl"]
    assert len(loading) >= 3, beats  # about 1 s of loading here, a beat every 0.05 s
    assert "rendering" in phases
    assert not isinstance(done, TaskFailed)


def _start_timeout_then_retry(folder: Path, _params: dict[str, Any]) -> list[Command]:
    return [_start_probe(folder, "tiny", "tiny:sd15", 1.5, retry_timeout_s=120)]


@ahead(_start_timeout_then_retry)
def test_the_start_timeout_counts_importing_and_each_phase_is_logged_once(ran: Ran) -> None:
    """A start timeout shorter than the imports stops the engine and names the phase it was in; a fresh engine
    then says importing and loading, one log line each, and is ready."""
    result = _probed(ran)
    assert "EngineStartError" in result["error"], result
    assert result["message"] == (
        "the engine did not load model 'tiny' within 1.5 s (it was importing torch and diffusers); "
        "raise engine_start_timeout_s or check the model"
    )
    prefix = result["prefix"]
    assert result["lines"] == [
        f"{prefix}importing torch and diffusers",
        f"{prefix}loading model tiny (full-precision weights on cpu)",
    ]
    assert result["ready"]


def _hub_model(folder: Path, params: dict[str, Any]) -> list[Command]:
    return [
        _start_probe(folder, "art", "someone/art-model", 120, HF_HUB_CACHE=str(folder / "hub"), **params["environment"])
    ]


@pytest.mark.parametrize(
    ("environment", "fragment"),
    [
        ({}, "is not downloaded, and HF_HUB_OFFLINE is set so nothing can be fetched: run `python -m bot models pull"),
        ({"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot reach the Hugging Face hub"),
    ],
)
@ahead(_hub_model)
def test_a_start_up_model_that_cannot_be_downloaded_is_one_line(
    ran: Ran, environment: dict[str, str], fragment: str
) -> None:
    """The default hub model is not in the cache and cannot be fetched (offline, or no route to the hub): the
    engine says so in one line instead of a traceback (conftest sets HF_HUB_OFFLINE=1)."""
    result = _probed(ran)
    assert "EngineStartError" in result["error"], result
    message = result["message"]
    assert message.startswith("model 'art' (someone/art-model)") and fragment in message
    assert "\n" not in message
