"""``engine.devices`` resolved against the GPUs this machine shows: one engine per device, each seeing one card."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from bot.running.engine_devices import EngineDevice, engine_devices, visible_cuda_ids
from bot.running.engine_pool import LocalEngines
from config.errors import ConfigError
from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("environ", "gpu_count", "expected"),
    [
        ({}, 0, []),
        ({}, 2, ["0", "1"]),
        ({"CUDA_VISIBLE_DEVICES": "2,3"}, 4, ["2", "3"]),  # the owner's limit wins over the driver's count
        ({"CUDA_VISIBLE_DEVICES": ""}, 4, []),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 4, []),
        ({"CUDA_VISIBLE_DEVICES": "GPU-5f3a, GPU-77b1"}, 0, ["GPU-5f3a", "GPU-77b1"]),
    ],
)
def test_visible_cuda_ids(environ: dict[str, str], gpu_count: int, expected: list[str]) -> None:
    """CUDA_VISIBLE_DEVICES when set (ids or UUIDs), else every GPU the driver lists."""
    assert visible_cuda_ids(environ, gpu_count) == expected


@pytest.mark.parametrize(
    ("devices", "device", "visible", "expected"),
    [
        ("auto", "auto", [], [EngineDevice("auto", "auto")]),  # no GPU: one engine, as before
        ("auto", "cpu", ["0", "1"], [EngineDevice("cpu", "cpu")]),  # the owner asked for the CPU
        ("auto", "auto", ["0"], [EngineDevice("cuda:0", "auto")]),  # one GPU: the engine sees what the bot sees
        (
            "auto",
            "cuda",
            ["2", "3"],
            [EngineDevice("cuda:0", "cuda", "2"), EngineDevice("cuda:1", "cuda", "3")],
        ),
        (["cuda:1"], "auto", ["4", "5"], [EngineDevice("cuda:1", "cuda", "5")]),
        (["cpu", "cpu"], "auto", [], [EngineDevice("cpu", "cpu"), EngineDevice("cpu", "cpu")]),
        (["cuda"], "auto", ["0", "1"], [EngineDevice("cuda", "cuda")]),  # no index: every visible card
    ],
)
def test_engine_devices(
    devices: Literal["auto"] | list[str], device: str, visible: list[str], expected: list[EngineDevice]
) -> None:
    """One engine per visible GPU with ``auto``, one per listed device otherwise; cuda:N is the N-th visible card."""
    assert engine_devices(devices, device, visible) == expected


def test_a_gpu_the_machine_does_not_show_is_refused_by_name() -> None:
    """cuda:2 on a two-GPU machine: the error names the device and the GPUs there are."""
    with pytest.raises(ValueError, match=r"engine.devices names cuda:2, but this machine shows GPUs: cuda:0, cuda:1"):
        engine_devices(["cuda:0", "cuda:2"], "auto", ["0", "1"])
    with pytest.raises(ValueError, match="shows GPUs: none"):
        engine_devices(["cuda:0"], "auto", [])


def test_local_engines_start_one_engine_per_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two listed GPUs: two engines, each pinned to its card (CUDA_VISIBLE_DEVICES), none started yet."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    engines = LocalEngines(make_settings(tmp_path, engine={"devices": ["cuda:1", "cuda:0"]}))
    assert engines.wanted() == 2
    made = [engines.create(index) for index in range(2)]
    assert [(engine.config.device, engine.config.visible_devices, label) for engine, label in made] == [
        ("cuda", "5", "cuda:1"),
        ("cuda", "3", "cuda:0"),
    ]
    assert not any(engine.alive for engine, _ in made)


def test_a_missing_gpu_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cuda:3 where one GPU is visible: ConfigError (the bot exits 2 with the line), before any engine starts."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ConfigError, match=r"engine\.devices names cuda:3, but this machine shows GPUs: cuda:0"):
        LocalEngines(make_settings(tmp_path, engine={"devices": ["cuda:3"]}))
