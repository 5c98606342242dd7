"""doctor's engine lines: the engines ``run`` will start on this machine's GPUs (as the driver and
``CUDA_VISIBLE_DEVICES`` show them) with each card's memory from the one probe, a ``cuda:N`` the machine lacks as a
problem, and the Ray cluster to join without contacting it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import bot.running.engine_devices
from bot.operations.doctor import check_engines, engine_device_lines, run_doctor
from bot.running.engine_devices import EngineDevice
from tests.conftest import make_settings

H100 = {"name": "NVIDIA H100", "free_gb": 78.5, "total_gb": 79.6}
A10 = {"name": "NVIDIA A10", "free_gb": 20.1, "total_gb": 22.0}


@pytest.mark.parametrize(
    ("devices", "probe", "lines"),
    [
        ([EngineDevice("auto", "auto")], None, ["engines: 1 (auto)"]),
        ([EngineDevice("auto", "auto")], {"device": "cpu"}, ["engines: 1 (cpu)"]),
        ([EngineDevice("cpu", "cpu")], None, ["engines: 1 (cpu)"]),
        ([EngineDevice("cuda:0", "auto")], {"device": "cuda", "gpus": [H100]}, ["engines: 1 (cuda:0)"]),
        (
            [EngineDevice("cuda:0", "cuda", "0"), EngineDevice("cuda:1", "cuda", "1")],
            None,
            [
                "engines: 2 (cuda:0, cuda:1)",
                "  engine 0: cuda:0 (CUDA_VISIBLE_DEVICES=0)",
                "  engine 1: cuda:1 (CUDA_VISIBLE_DEVICES=1)",
            ],
        ),
        (
            [EngineDevice("cuda:0", "cuda", "4"), EngineDevice("cuda:1", "cuda", "6"), EngineDevice("cpu", "cpu")],
            {"device": "cuda", "gpus": [H100, A10]},
            [
                "engines: 3 (cuda:0, cuda:1, cpu)",
                "  engine 0: cuda:0 (CUDA_VISIBLE_DEVICES=4), NVIDIA H100, 78.5 GiB free of 79.6 GiB",
                "  engine 1: cuda:1 (CUDA_VISIBLE_DEVICES=6), NVIDIA A10, 20.1 GiB free of 22.0 GiB",
                "  engine 2: cpu",
            ],
        ),
        (
            [EngineDevice("cuda:1", "cuda", "1")],
            {"device": "cuda", "gpus": [H100, A10]},
            [
                "engines: 1 (cuda:1)",
                "  engine 0: cuda:1 (CUDA_VISIBLE_DEVICES=1), NVIDIA A10, 20.1 GiB free of 22.0 GiB",
            ],
        ),
        (
            [EngineDevice("cpu", "cpu"), EngineDevice("cpu", "cpu")],
            {"device": "cpu"},
            ["engines: 2 (cpu, cpu)", "  engine 0: cpu", "  engine 1: cpu"],
        ),
    ],
)
def test_engine_device_lines(devices: list[EngineDevice], probe: dict[str, Any] | None, lines: list[str]) -> None:
    """One engine: one line (auto named by the probe); several: a line each, with its card's memory when probed."""
    assert engine_device_lines(devices, probe) == lines


@pytest.mark.parametrize(
    ("engine", "device", "visible", "gpu_count", "first_line"),
    [
        ({"devices": ["cuda:0", "cuda:1"]}, "auto", "3,5", 0, "engines: 2 (cuda:0, cuda:1)"),
        ({}, "auto", "2,7", 0, "engines: 2 (cuda:0, cuda:1)"),
        ({}, "auto", None, 4, "engines: 4 (cuda:0, cuda:1, cuda:2, cuda:3)"),
        ({}, "auto", None, 1, "engines: 1 (cuda:0)"),
        ({}, "cpu", None, 2, "engines: 1 (cpu)"),
        ({"devices": ["cpu", "cpu"]}, "auto", "", 0, "engines: 2 (cpu, cpu)"),
    ],
)
def test_this_machines_engines(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    engine: dict[str, object],
    device: str,
    visible: str | None,
    gpu_count: int,
    first_line: str,
) -> None:
    """engine.devices resolved as ``run`` resolves it, from CUDA_VISIBLE_DEVICES or the driver's GPU count."""
    _machine(monkeypatch, visible, gpu_count)
    report = check_engines(make_settings(tmp_path, device=device, engine=engine))
    assert report.lines[0] == first_line and report.problems == []


def test_cuda_visible_devices_are_named_per_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each engine's line names the host GPU its CUDA_VISIBLE_DEVICES gives it."""
    _machine(monkeypatch, "3,5", 0)
    report = check_engines(make_settings(tmp_path, engine={"devices": ["cuda:1", "cuda:0"]}))
    assert report.lines == [
        "engines: 2 (cuda:1, cuda:0)",
        "  engine 0: cuda:1 (CUDA_VISIBLE_DEVICES=5)",
        "  engine 1: cuda:0 (CUDA_VISIBLE_DEVICES=3)",
    ]


@pytest.mark.parametrize(
    ("visible", "gpu_count", "missing", "shown"),
    [
        ("0,1", 0, "cuda:2", "cuda:0, cuda:1"),
        (None, 2, "cuda:2", "cuda:0, cuda:1"),
        (None, 0, "cuda:0", "none"),
        ("", 0, "cuda:0", "none"),
        ("-1", 0, "cuda:0", "none"),
    ],
)
def test_a_gpu_the_machine_lacks_is_a_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, visible: str | None, gpu_count: int, missing: str, shown: str
) -> None:
    """A cuda:N the machine does not show: no engine line but the reason, and a problem saying what to write."""
    _machine(monkeypatch, visible, gpu_count)
    report = check_engines(make_settings(tmp_path, engine={"devices": ["cuda:0", "cuda:2"]}))
    reason = f"engine.devices names {missing}, but this machine shows GPUs: {shown}"
    assert report.lines == [f"engines: none can start: {reason}"]
    assert report.problems == [f'{reason}; list only those in engine.devices, or write devices = "auto"']


def test_doctor_fails_on_a_missing_gpu_and_lists_good_engines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The whole report: exit 1 with the problem listed; with the GPUs there, the engines and no engine problem."""
    _machine(monkeypatch, "0", 0)
    code, text = run_doctor(make_settings(tmp_path, engine={"devices": ["cuda:0", "cuda:1"]}), probe_engine=False)
    assert code == 1
    assert "  - engine.devices names cuda:1, but this machine shows GPUs: cuda:0; list only those" in text
    _machine(monkeypatch, "0,1", 0)
    code, text = run_doctor(make_settings(tmp_path, engine={"devices": ["cuda:0", "cuda:1"]}), probe_engine=False)
    assert "engines: 2 (cuda:0, cuda:1)\n  engine 0: cuda:0 (CUDA_VISIBLE_DEVICES=0)\n" in text
    assert "engine.devices" not in text


def test_ray_backend_names_the_cluster_and_ray(tmp_path: Path) -> None:
    """The address, namespace, engines and resources from [engine], and ray's version; no cluster is contacted."""
    import importlib.metadata

    settings = make_settings(
        tmp_path,
        engine={"backend": "ray", "ray_address": "10.0.0.5:6379", "ray_resources": {"GPU": 0.5, "memory": 2e9}},
    )
    imported_before = "ray" in sys.modules
    report = check_engines(settings)
    assert ("ray" in sys.modules) == imported_before  # found, not imported
    assert report.lines == [
        "engines: Ray at 10.0.0.5:6379, namespace imaginebot: as many as the cluster has resources for, each asking "
        "GPU 0.5, memory 2e+09; doctor does not contact the cluster (`ray status` shows it)",
        f"ray: {importlib.metadata.version('ray')}",
    ]
    assert report.problems == []


def test_ray_backend_on_the_default_address_with_a_number_of_engines(tmp_path: Path) -> None:
    """address auto is the cluster `ray start` runs here; a number of engines is said as such."""
    report = check_engines(make_settings(tmp_path, engine={"backend": "ray", "ray_engines": 3}))
    assert report.lines[0].startswith(
        "engines: Ray at auto (the cluster `ray start` runs on this machine), namespace imaginebot: 3 engines, "
        "each asking GPU 1;"
    )


def test_ray_backend_without_ray_is_a_problem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where ray cannot be imported, doctor says how to install the extra."""
    monkeypatch.setitem(sys.modules, "ray", None)  # what Python does for a package that is not installed
    report = check_engines(make_settings(tmp_path, engine={"backend": "ray"}))
    assert report.lines[-1] == "ray: missing"
    assert report.problems == ["engine.backend = \"ray\" needs ray: pip install 'imaginebot[ray]'"]


def _machine(monkeypatch: pytest.MonkeyPatch, visible: str | None, gpu_count: int) -> None:
    """This machine as the bot sees it: CUDA_VISIBLE_DEVICES (None: unset) and the GPUs the driver lists."""
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setattr(bot.running.engine_devices, "count_nvidia_gpus", lambda: gpu_count)
