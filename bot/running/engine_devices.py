"""Which devices the local engines run on: ``engine.devices`` resolved against the GPUs this machine shows.

The bot never imports torch, so it counts GPUs the way the NVIDIA driver does (``nvidia-smi``) and honours
``CUDA_VISIBLE_DEVICES``. Each engine then sees exactly one card as its ``cuda`` (its own ``CUDA_VISIBLE_DEVICES``),
so its memory probes, offloading and caches concern that card only.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

NVIDIA_SMI_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class EngineDevice:
    """Where one engine runs: ``label`` as the owner wrote it (``cuda:1``), the engine's ``device`` setting, and
    the ``CUDA_VISIBLE_DEVICES`` it gets (empty: inherited)."""

    label: str
    device: str
    visible: str = ""


def visible_cuda_ids(environ: Mapping[str, str], gpu_count: int) -> list[str]:
    """The host's GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else ``0 … gpu_count-1``."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [item.strip() for item in listed.split(",") if item.strip() and item.strip() != "-1"]
    return [str(index) for index in range(gpu_count)]


def engine_devices(
    devices: Literal["auto"] | Sequence[str], device: str, visible_ids: Sequence[str]
) -> list[EngineDevice]:
    """One entry per engine to start. ``devices`` is ``engine.devices``, ``device`` the ``device`` setting,
    ``visible_ids`` the GPU ids this process may use (:func:`visible_cuda_ids`).

    ``auto``: one engine per visible GPU when ``device`` is ``auto`` or ``cuda``, else (or without a GPU) one engine
    on ``device``. A list: one engine per entry; ``cuda:N`` is the N-th visible GPU. Raises ValueError naming a
    ``cuda:N`` this machine does not show.
    """
    if devices == "auto":
        if device in ("auto", "cuda") and len(visible_ids) > 1:
            return [EngineDevice(f"cuda:{index}", "cuda", gpu) for index, gpu in enumerate(visible_ids)]
        if device in ("auto", "cuda") and visible_ids:  # one GPU: the engine sees what the bot sees
            return [EngineDevice("cuda:0", device)]
        return [EngineDevice(device, device)]
    chosen: list[EngineDevice] = []
    for label in devices:
        kind, _, index = label.partition(":")
        if kind != "cuda" or not index:
            chosen.append(EngineDevice(label, kind))
            continue
        position = int(index)
        if position >= len(visible_ids):
            shown = ", ".join(f"cuda:{n}" for n in range(len(visible_ids))) or "none"
            raise ValueError(f"engine.devices names {label}, but this machine shows GPUs: {shown}")
        chosen.append(EngineDevice(label, "cuda", visible_ids[position]))
    return chosen


def count_nvidia_gpus() -> int:
    """How many GPUs the NVIDIA driver lists (0 without the driver or ``nvidia-smi``)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return 0
    try:
        completed = subprocess.run(
            [tool, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("could not count the GPUs with nvidia-smi: %s", error)
        return 0
    if completed.returncode != 0:
        return 0
    return sum(1 for line in completed.stdout.splitlines() if line.strip())


def local_engine_devices(devices: Literal["auto"] | Sequence[str], device: str) -> list[EngineDevice]:
    """:func:`engine_devices` for this machine (asks the driver only when ``auto`` or a ``cuda:N`` needs it)."""
    needs_count = (devices == "auto" and device in ("auto", "cuda")) or any(
        label.startswith("cuda:") for label in (devices if devices != "auto" else ())
    )
    listed = "CUDA_VISIBLE_DEVICES" in os.environ
    gpu_count = count_nvidia_gpus() if needs_count and not listed else 0
    return engine_devices(devices, device, visible_cuda_ids(os.environ, gpu_count))
