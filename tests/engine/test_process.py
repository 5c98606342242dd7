"""The engine loop's parts, run in this process: OOM fails only its job, the inbox's cancels, the heartbeat."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from engine import process, render
from engine.protocol import (
    Cancel,
    EngineConfig,
    Heartbeat,
    ModelEntry,
    RenderBatch,
    RenderTask,
    TaskDone,
    TaskFailed,
)
from tests.engine.rendering import run_group_here


class FakeInbox:
    def is_cancelled(self, job_id: int) -> bool:
        return False


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.times: list[float] = []
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self._lock:
            self.sent.append(message)
            self.times.append(time.monotonic())


class RecordedPhases:
    """Stands in for the heartbeat thread: keeps the phases the render loop announces, in order."""

    def __init__(self) -> None:
        self.phases: list[tuple[tuple[int, ...], str]] = []

    def phase(self, job_ids: list[int], phase: str) -> None:
        self.phases.append((tuple(job_ids), phase))


def _task(root: Path, job_id: int) -> RenderTask:
    return RenderTask(job_id, "a fox", "", 64, 64, 2, 5.0, (1,), "euler", str(root / "images" / str(job_id)))


def test_out_of_memory_fails_only_that_job_with_what_to_lower(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.pipelines import ModelCache

    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(tmp_path))
    cache = ModelCache(config)
    real = render.render_group

    def render_or_oom(cache: Any, tasks: list[RenderTask], loras: Any, hooks: Any) -> Any:
        if tasks[0].job_id == 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(cache, tasks, loras, hooks)

    monkeypatch.setattr(render, "render_group", render_or_oom)
    conn = FakeConn()
    args = (cache, config)
    (failed,) = run_group_here(*args, [_task(tmp_path, 1)], FakeInbox(), conn, tmp_path.resolve())  # type: ignore[arg-type]
    (done,) = run_group_here(*args, [_task(tmp_path, 2)], FakeInbox(), conn, tmp_path.resolve())  # type: ignore[arg-type]
    assert isinstance(failed, TaskFailed) and failed.reason == "oom"
    assert "smaller --ar size or fewer images" in failed.message
    assert isinstance(done, TaskDone) and Path(done.paths[0]).is_file()


def test_run_group_announces_loading_rendering_and_writing(tmp_path: Path) -> None:
    """A group whose model is not loaded goes through three phases, each told to the heartbeat as it starts."""
    from engine.pipelines import ModelCache

    config = EngineConfig(
        "tiny",
        "tiny:sd15",
        "sd15",
        str(tmp_path),
        models=(ModelEntry("tiny", "tiny:sd15", "sd15"), ModelEntry("tiny-sdxl", "tiny:sdxl", "sdxl")),
    )
    cache = ModelCache(config)
    cache.get()
    task = RenderTask(3, "a fox", "", 64, 64, 2, 5.0, (1,), "euler", str(tmp_path / "images" / "3"), model="tiny-sdxl")
    recorded = RecordedPhases()
    (done,) = run_group_here(cache, config, [task], FakeInbox(), FakeConn(), tmp_path.resolve(), recorded)  # type: ignore[arg-type]
    assert isinstance(done, TaskDone)
    assert recorded.phases == [((3,), "loading model tiny-sdxl"), ((3,), "rendering"), ((3,), "writing files")]


class CancelsOneJobMidRender:
    """Cancels ``job_id`` once the render reports its first step, while the other jobs of the group go on."""

    def __init__(self, conn: FakeConn, job_id: int) -> None:
        self._conn = conn
        self._job_id = job_id

    def is_cancelled(self, job_id: int) -> bool:
        return job_id == self._job_id and bool(self._conn.sent)


def test_a_job_cancelled_while_its_group_renders_writes_no_file(tmp_path: Path) -> None:
    """Of two jobs in one pipeline call, the one cancelled mid-render gets no image and no grid; the other gets its
    images and grid, the grid's bytes in the reply when asked."""
    from engine.pipelines import ModelCache

    config = EngineConfig("tiny", "tiny:sd15", "sd15", str(tmp_path), max_batch=2)
    cache = ModelCache(config)
    cancelled, kept = _task(tmp_path, 1), replace(_task(tmp_path, 2), return_bytes=True)
    conn = FakeConn()
    inbox = CancelsOneJobMidRender(conn, 1)
    first, second = run_group_here(cache, config, [cancelled, kept], inbox, conn, tmp_path.resolve())  # type: ignore[arg-type]
    assert isinstance(first, TaskFailed) and first.reason == "cancelled"
    assert not Path(cancelled.output_dir).exists() or not any(Path(cancelled.output_dir).iterdir())
    assert isinstance(second, TaskDone)
    assert second.grid_path == str(Path(kept.output_dir).resolve() / "grid.jpg")
    assert second.grid_bytes == Path(second.grid_path).read_bytes()


def test_heartbeat_beats_for_each_held_job_until_its_result() -> None:
    """Held jobs get a beat at once, then one per interval; a phase change beats at once; a released job none."""
    conn = FakeConn()
    heartbeat = process._Heartbeat(conn)  # type: ignore[arg-type]
    heartbeat.hold([1, 2], 0.05)
    time.sleep(0.4)
    heartbeat.phase([1], "rendering")
    time.sleep(0.1)
    heartbeat.release(1)
    released_at = time.monotonic()
    time.sleep(0.3)
    heartbeat.release(2)
    beats = [(at, beat) for at, beat in zip(conn.times, conn.sent, strict=True) if isinstance(beat, Heartbeat)]
    assert beats[0][1] in (Heartbeat(1, "queued"), Heartbeat(2, "queued"))
    assert Heartbeat(1, "rendering") in [beat for _, beat in beats]
    assert all(at <= released_at for at, beat in beats if beat.job_id == 1)
    second = [at for at, beat in beats if beat.job_id == 2]
    assert len(second) >= 8  # 0.8 s at one beat per 0.05 s, with room for a slow machine
    assert max(b - a for a, b in itertools.pairwise(second)) < 0.5


def test_inbox_ignores_a_cancel_for_a_job_it_does_not_hold() -> None:
    """A stale cancel (its job ended, or never came) does not stop a later job with the same id."""
    ours, theirs = multiprocessing.Pipe(duplex=True)
    inbox = process._Inbox(theirs)

    def batch(job_id: int) -> RenderBatch:
        return RenderBatch((RenderTask(job_id, "a fox", "", 64, 64, 2, 5.0, (1,), "euler", "out"),))

    ours.send(Cancel(7))
    ours.send(batch(7))
    assert inbox.get() == batch(7)
    assert not inbox.is_cancelled(7)
    ours.send(Cancel(7))
    deadline = time.monotonic() + 10
    while not inbox.is_cancelled(7):
        assert time.monotonic() < deadline, "the cancel of a held job never arrived"
        time.sleep(0.01)
    inbox.forget(7)
    ours.send(Cancel(7))
    ours.send(batch(7))
    assert inbox.get() == batch(7)
    assert not inbox.is_cancelled(7)
    ours.close()


def test_a_job_held_twice_keeps_its_heartbeat_until_both_attempts_are_released() -> None:
    """A new attempt of a job arrives while the last one's files are written: releasing the old attempt leaves the
    new one beating; releasing both stops the beats."""
    conn = FakeConn()
    heartbeat = process._Heartbeat(conn)  # type: ignore[arg-type]
    heartbeat.hold([7], 0.05)
    heartbeat.hold([7], 0.05)
    heartbeat.release(7)
    time.sleep(0.2)
    beats_after_one = len(conn.sent)
    time.sleep(0.2)
    assert len(conn.sent) > beats_after_one  # still beating for the second attempt
    heartbeat.release(7)
    time.sleep(0.1)
    stopped = len(conn.sent)
    time.sleep(0.3)
    assert len(conn.sent) == stopped
