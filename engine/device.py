"""Pick the device and dtype the engine runs on."""

from __future__ import annotations

import torch


def pick_device(requested: str) -> str:
    """``auto`` picks cuda, then mps, then xpu, then cpu; an explicit choice that is missing is an error."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
        "xpu": bool(getattr(torch, "xpu", None)) and torch.xpu.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return next(name for name in ("cuda", "mps", "xpu", "cpu") if available[name])
    if requested not in available:
        raise ValueError(f"device {requested!r} is not one of auto, cuda, mps, xpu, cpu")
    if not available[requested]:
        raise ValueError(f"device {requested!r} was asked for but is not available on this machine; use auto")
    return requested


def pick_dtype(requested: str, device: str) -> torch.dtype:
    """``auto`` is fp16 on a GPU and fp32 on the CPU (fp16 matmuls on CPU are slow or unsupported)."""
    table = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    if requested == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    if requested not in table:
        raise ValueError(f"dtype {requested!r} is not one of auto, fp16, bf16, fp32")
    return table[requested]
