"""The engine loop's error handling, run in this process with a fake pipe: OOM fails only its job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from engine import process, render
from engine.protocol import EngineConfig, RenderTask, TaskDone, TaskFailed


class FakeInbox:
    def is_cancelled(self, job_id: int) -> bool:
        return False


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)


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
    (failed,) = process._run_group(*args, [_task(tmp_path, 1)], FakeInbox(), conn, tmp_path.resolve())  # type: ignore[arg-type]
    (done,) = process._run_group(*args, [_task(tmp_path, 2)], FakeInbox(), conn, tmp_path.resolve())  # type: ignore[arg-type]
    assert isinstance(failed, TaskFailed) and failed.reason == "oom"
    assert "smaller --ar size or fewer images" in failed.message
    assert isinstance(done, TaskDone) and Path(done.paths[0]).is_file()
