"""Pick the device and dtype the engine runs on."""

from __future__ import annotations

import torch

from engine.speed import resolve_dtype


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


def bf16_supported(device: str) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA card of compute capability 8.0 or newer (Ampere on).
    Older cards emulate it slowly, so they do not count."""
    if device != "cuda":
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the argument reports native support only
        return bool(torch.cuda.is_bf16_supported())


def pick_dtype(requested: str, device: str) -> torch.dtype:
    """``auto`` is bf16 on a CUDA card that supports it, fp16 on other GPUs and fp32 on the CPU (fp16 matmuls on
    CPU are slow or unsupported); see :func:`engine.speed.resolve_dtype`."""
    table = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    return table[resolve_dtype(requested, device, bf16_supported(device) if requested == "auto" else False)]
