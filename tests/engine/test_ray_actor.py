"""The Ray actor's rules that need no cluster: which files a task reads, the engine's configuration on its host,
and removing what killed actors left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.protocol import EngineConfig, RenderTask, TaskKind
from engine.ray_actor import TEMPORARY_PREFIX, host_config, input_paths, remove_stale


def _task(**fields: object) -> RenderTask:
    return RenderTask(1, "a fox", "", 64, 64, 2, 5.0, (1,), "euler", "/data/images/1", **fields)


@pytest.mark.parametrize(
    ("task", "paths"),
    [
        (_task(), ()),
        (_task(kind=TaskKind.INPAINT, init_image="/a.png", mask_image="/m.png"), ("/a.png", "/m.png")),
        (_task(kind=TaskKind.CONTROL, control_image="/c.png"), ("/c.png",)),
        (_task(image_prompts=("/p1.png", "/p2.png"), init_image="/a.png"), ("/a.png", "/p1.png", "/p2.png")),
        (_task(kind=TaskKind.DESCRIBE, init_image="/d.png"), ("/d.png",)),
    ],
)
def test_input_paths(task: RenderTask, paths: tuple[str, ...]) -> None:
    """Every image a task reads travels with it: source, mask, control image, image prompts."""
    assert input_paths(task) == paths


@pytest.mark.parametrize(
    ("device", "on_host"), [("cuda:1", "cuda"), ("cuda", "cuda"), ("auto", "auto"), ("cpu", "cpu")]
)
def test_host_config(tmp_path: Path, device: str, on_host: str) -> None:
    """On its host an engine writes under its own folder and uses the GPU Ray gave it (its ``cuda``)."""
    config = EngineConfig("tiny", "tiny:sd15", "sd15", "/bot/data", device=device, visible_devices="1")
    local = host_config(config, tmp_path)
    assert (local.data_dir, local.device, local.visible_devices) == (str(tmp_path), on_host, "")
    assert local.model_name == config.model_name


def test_remove_stale_keeps_what_running_actors_and_others_own(tmp_path: Path) -> None:
    """Folders of actors no longer running go; those of a running one, and any other name, stay."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(ended.stdout)
    names = [f"{TEMPORARY_PREFIX}{dead}-x", f"{TEMPORARY_PREFIX}{os.getpid()}-y", f"{TEMPORARY_PREFIX}z", "other"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "file").write_bytes(b"data")
    remove_stale(tmp_path, TEMPORARY_PREFIX)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(names[1:])
    (tmp_path / "scratch").mkdir()
    for name in (f"{dead}-a", f"{os.getpid()}-b"):
        (tmp_path / "scratch" / name).mkdir()
    remove_stale(tmp_path / "scratch")
    assert [path.name for path in (tmp_path / "scratch").iterdir()] == [f"{os.getpid()}-b"]
