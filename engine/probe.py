"""``python -m engine.probe``: print one JSON line about this machine's torch, devices and memory (for doctor)."""

from __future__ import annotations

import json
import platform
from typing import Any


def probe() -> dict[str, Any]:
    """Versions, the device ``auto`` picks, whether it computes bf16, accelerator memory, and optional packages."""
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
    for package in ("compel", "peft", "bitsandbytes"):
        try:
            module = __import__(package)
            report[package] = getattr(module, "__version__", "installed")
        except ImportError:
            report[package] = None
    return report


if __name__ == "__main__":
    print(json.dumps(probe()))
