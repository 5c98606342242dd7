"""Which speed settings a model runs with: pure decisions, no torch (the engine uses them when it loads a model,
``python -m bot doctor`` to say what a start would turn on).

On a CUDA GPU the fast settings are on unless the owner switches them off: bf16 where the card computes it natively
(fp16 on other GPUs, fp32 on the CPU), PyTorch's scaled-dot-product attention, TF32 for what still runs in fp32,
and for SD1.x/2.x the UNet in ``channels_last`` with fused QKV projections. Measured on an H200 (20 steps, 4 images):
SD1.5 went from 1.00 s to 0.75 s per call with the last two, while SDXL went from 3.32 s to 3.82 s, so ``auto``
leaves them off for SDXL (and on the CPU, where they do not pay). On an H100, through the whole job path (VAE decode
and images included), SD1.5 showed no gain from them (0.76 s plain, 0.81 s with them, eager; 0.74-0.90 s either way
compiled): worth measuring on the card at hand (``python -m bot doctor`` says what is on).

bf16 rather than fp16 on cards that have it: the same speed for SD1.5, and for SDXL 3.34 s instead of 3.57 s and
16 GiB of peak memory instead of 26 GiB, because an fp16 SDXL VAE must be upcast to fp32 to decode (diffusers'
``force_upcast``, kept for fp16) and a bf16 one does not overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.protocol import MemoryOptions

AUTO = "auto"
DTYPES = ("fp16", "bf16", "fp32")
LAYOUT_FAMILIES = ("sd15", "sd2")
"""Families whose UNet runs faster in ``channels_last`` with fused QKV projections (``auto`` turns both on)."""
COMPILE_MODES = ("regional", "full")


def resolve_dtype(requested: str, device: str, bf16_supported: bool) -> str:
    """``auto``: bf16 on a CUDA card that computes it natively, fp16 on any other GPU, fp32 on the CPU (half
    precision matmuls there are slow or unsupported). An explicit ``fp16``/``bf16``/``fp32`` is kept."""
    if requested == AUTO:
        if device == "cpu":
            return "fp32"
        return "bf16" if device == "cuda" and bf16_supported else "fp16"
    if requested not in DTYPES:
        raise ValueError(f"dtype {requested!r} is not one of auto, {', '.join(DTYPES)}")
    return requested


def layout_switch(setting: bool | str, family: str, device: str) -> bool:
    """``channels_last`` or fused QKV: ``auto`` is on for SD1.x/2.x on CUDA, off for SDXL (slower there) and off
    the GPU; ``True``/``False`` is the owner's choice on any device."""
    if setting == AUTO:
        return device == "cuda" and family in LAYOUT_FAMILIES
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"{setting!r} is not one of auto, true, false")


def fusion_conflict(options: MemoryOptions) -> str:
    """Why fused QKV projections cannot be used with these options (empty when they can): the fused attention
    processor would replace classic or sliced attention, and quantized weights cannot be concatenated."""
    if not options.sdpa:
        return "sdpa = false (classic attention)"
    if options.attention_slicing:
        return "attention_slicing = true"
    if options.quantize != "none":
        return f"quantize = {options.quantize}"
    return ""


@dataclass(frozen=True)
class SpeedPlan:
    """What a model load turns on, decided before anything is loaded."""

    dtype: str
    sdpa: bool
    tf32: bool
    channels_last: bool
    fused_qkv: bool
    compile: str
    """``regional``, ``full`` or empty (not compiled)."""

    def labels(self) -> tuple[str, ...]:
        """The switches that are on, as the engine logs them and doctor prints them, e.g. ``("bf16", "sdpa")``."""
        labels = [self.dtype]
        if self.sdpa:
            labels.append("sdpa")
        if self.tf32:
            labels.append("tf32")
        if self.channels_last:
            labels.append("channels_last")
        if self.fused_qkv:
            labels.append("fused qkv")
        if self.compile:
            labels.append(f"compiled ({self.compile})")
        return tuple(labels)


def plan_speed(options: MemoryOptions, family: str, device: str, dtype: str) -> SpeedPlan:
    """The speed settings of a model of ``family`` on ``device`` at ``dtype`` (already resolved: fp16/bf16/fp32)."""
    if options.compile_mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode {options.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}")
    return SpeedPlan(
        dtype=dtype,
        sdpa=options.sdpa,
        tf32=options.tf32 and device == "cuda",
        channels_last=layout_switch(options.channels_last, family, device),
        fused_qkv=layout_switch(options.fused_qkv, family, device) and not fusion_conflict(options),
        compile=options.compile_mode if options.compile else "",
    )


def dtype_name(dtype: object) -> str:
    """``fp16``, ``bf16`` or ``fp32`` for a torch dtype (or its name); anything else as it is printed."""
    name = str(dtype).removeprefix("torch.")
    return {"float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp32", "float": "fp32"}.get(name, name)
