"""The engine never hands a LoRA's path to the Hugging Face hub: a missing file is one clear error that names no
path (the member sees it), with the path in the log for the owner."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.pipelines import ModelCache
from engine.protocol import EngineConfig, LoraEntry, ModelEntry, RenderTask
from engine.render import Hooks, render_task

MISSING_PATHS = ["./models/loras/pixel-art.safetensors", "pixel-art.safetensors", "~/loras/pixel.safetensors"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> ModelCache:
    root = tmp_path_factory.mktemp("missing-lora")
    models = (ModelEntry("tiny", "tiny:sd15", "sd15"),)
    return ModelCache(EngineConfig("tiny", "tiny:sd15", "sd15", str(root), models=models))


@pytest.mark.parametrize("path", MISSING_PATHS, ids=["relative", "bare-name", "home"])
def test_a_missing_lora_file_is_a_clear_error_not_a_repo_id(
    cache: ModelCache, tmp_path: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A relative path, a bare file name, a ``~`` path: none is looked up on the hub, each says the file is missing."""
    task = RenderTask(1, "a castle <lora:pixel:0.8>", "", 64, 64, 2, 5.0, (7,), "euler_a", str(tmp_path))
    hooks = Hooks(lambda *_args: None, lambda _job: False, 0)
    expected = (
        "LoRA pixel is not available on this server (its file is missing); "
        "the owner can fix [loras.pixel] path in the configuration"
    )
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match=r"^LoRA pixel is not available") as raised:
        render_task(cache, task, (LoraEntry("pixel", path),), hooks)
    assert str(raised.value) == expected
    assert path in caplog.text  # the owner's log says which file
