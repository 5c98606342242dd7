"""``python -m engine.probe``: print one JSON line about this machine's torch, devices and memory (for doctor)."""

from __future__ import annotations

import json
import platform
from typing import Any


def probe() -> dict[str, Any]:
    """Versions, the device ``auto`` picks, whether it computes bf16, accelerator memory (the first GPU, and each GPU
    under ``gpus``), and optional packages."""
    import diffusers
    import torch
    import transformers

    from engine.device import bf16_supported, pick_device

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "device": pick_device("auto"),
        "cuda": torch.cuda.is_available(),
        "bf16": bf16_supported("cuda") if torch.cuda.is_available() else False,
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        report["gpu"] = torch.cuda.get_device_name(0)
        report["gpu_free_gb"] = round(free / 2**30, 2)
        report["gpu_total_gb"] = round(total / 2**30, 2)
        report["gpus"] = [_gpu(index) for index in range(torch.cuda.device_count())]
    for package in ("compel", "peft", "bitsandbytes"):
        try:
            module = __import__(package)
            report[package] = getattr(module, "__version__", "installed")
        except ImportError:
            report[package] = None
    return report


def _gpu(index: int) -> dict[str, Any]:
    """The name and memory of the ``index``-th visible GPU (an engine's ``cuda:N``)."""
    import torch

    free, total = torch.cuda.mem_get_info(index)
    return {
        "name": torch.cuda.get_device_name(index),
        "free_gb": round(free / 2**30, 2),
        "total_gb": round(total / 2**30, 2),
    }


if __name__ == "__main__":
    print(json.dumps(probe()))
