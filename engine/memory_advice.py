"""What to say when the GPU runs out of memory: one line that says what to change. No torch; only
:func:`needed_weight_bytes` reads files (safetensors headers).

Two places can run out: loading a model (its weights moving to the GPU; the owner must change a setting or the
model) and rendering (activations of a batch; the member can ask for less, the owner can turn on memory options).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.flow_quantize import T5_OF, quantization_plan
from engine.model_sources import component_parameters, parameter_count
from engine.protocol import MemoryOptions

GIB = 2**30
QUANTIZED_BYTES = {"4bit": 0.5, "8bit": 1.0}
"""Bytes per denoiser parameter once quantized (NF4 packs two parameters in a byte; its block scales are ~1%)."""


def memory_size(size: float) -> str:
    """``2.6 GiB``; ``700 MiB`` below 1 GiB; no decimal from 100 GiB up."""
    value = size / GIB
    if value < 1:
        return f"{size / 2**20:.0f} MiB"
    return f"{value:.0f} GiB" if value >= 100 else f"{value:.1f} GiB"


def dtype_bytes(dtype: str) -> int:
    """Bytes per parameter of a dtype name (``fp16``, ``bf16``, ``fp32``, or torch's ``float16`` …)."""
    name = dtype.removeprefix("torch.")
    return 4 if name in ("fp32", "float32", "float") else 2


def dtype_label(dtype: str) -> str:
    """``fp16``, ``bf16`` or ``fp32`` for a dtype name (torch's ``torch.float16`` included)."""
    name = dtype.removeprefix("torch.")
    return {"float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp32", "float": "fp32"}.get(name, name)


def component_bytes(
    parameters: Mapping[str, int],
    dtype: str,
    family: str = "sd15",
    quantize: str = "none",
    quantize_text_encoders: str = "none",
) -> dict[str, tuple[int, str]]:
    """Component → (GPU bytes of its weights, how they are stored: ``bf16``, ``4bit`` …): each component's
    ``parameters`` at ``dtype``, what bitsandbytes quantizes (:func:`engine.flow_quantize.quantization_plan`: the
    denoiser by ``quantize``, the T5 encoder of SD3/FLUX.1 by ``quantize_text_encoders``) at its quantized size."""
    plan = quantization_plan(family, quantize, quantize_text_encoders)
    sizes: dict[str, tuple[int, str]] = {}
    for component, count in parameters.items():
        mode = plan.get(component)
        per_parameter = QUANTIZED_BYTES[mode] if mode else dtype_bytes(dtype)
        sizes[component] = (int(count * per_parameter), mode or dtype_label(dtype))
    return sizes


def weight_bytes(
    parameters: Mapping[str, int],
    dtype: str,
    quantize: str = "none",
    *,
    family: str = "sd15",
    quantize_text_encoders: str = "none",
) -> int:
    """GPU bytes of a model's weights (the sum of :func:`component_bytes`)."""
    sizes = component_bytes(parameters, dtype, family, quantize, quantize_text_encoders)
    return sum(size for size, _stored in sizes.values())


def needed_weight_bytes(
    source: Path, single_file: bool, variant: str | None, dtype: str, family: str, memory: MemoryOptions
) -> int | None:
    """The GPU bytes of a model's weights (a diffusers folder, or a ``single_file`` checkpoint) at ``dtype`` and the
    configured quantization, from its safetensors headers; None when they cannot be read."""
    try:
        if single_file:
            return weight_bytes({"checkpoint": parameter_count([source])}, dtype)
        parameters = component_parameters(source, variant)
    except (OSError, ValueError, KeyError):
        return None
    text = memory.quantize_text_encoders
    return weight_bytes(parameters, dtype, memory.quantize, family=family, quantize_text_encoders=text) or None


def load_oom_message(
    model: str,
    needed_bytes: int | None,
    free_bytes: int | None,
    dtype: str,
    memory: MemoryOptions,
    family: str = "",
) -> str:
    """The owner's line when model ``model`` (of ``family``) does not fit: how much it needs, how much is free, what
    to set.

    Suggestions leave out what is already set: CPU offload (``auto`` or ``model``, then ``sequential``), 4-bit
    quantization of the denoiser, 8-bit quantization of the T5 encoder on a family that has one (SD3, FLUX.1: the
    largest part after the transformer), and always a smaller model.
    """
    label = dtype_label(dtype)
    if needed_bytes:
        quantized = f", its denoiser in {memory.quantize}" if memory.quantize in QUANTIZED_BYTES else ""
        if family in T5_OF and memory.quantize_text_encoders in QUANTIZED_BYTES:
            quantized += f", its T5 encoder in {memory.quantize_text_encoders}"
        need = (
            f"model {model} needs about {memory_size(needed_bytes)} of GPU memory for its weights at {label}{quantized}"
        )
    else:
        need = f"model {model} does not fit in GPU memory at {label}"
    free = f" and the GPU has {memory_size(free_bytes)} free" if free_bytes is not None else ""
    settings: list[str] = []
    if memory.offload == "none":
        settings.append('memory.offload = "auto" (or "model")')
    elif memory.offload in ("auto", "model"):
        settings.append('memory.offload = "sequential" (slowest, least memory)')
    if memory.quantize != "4bit":
        settings.append('memory.quantize = "4bit"')
    if family in T5_OF and memory.quantize_text_encoders == "none":
        settings.append('memory.quantize_text_encoders = "8bit"')
    fixes = [f"set {settings[0]}", *settings[1:]] if settings else []
    advice = ", or ".join([*fixes, "use a smaller model"])
    return f"{need}{free}: {advice}"


def render_oom_message(images: Sequence[tuple[int, int, int]], memory: MemoryOptions, jobs: int) -> str:
    """The line a job gets when rendering ran out of memory. ``images`` holds (count, width, height) per job of
    the pipeline call; ``jobs`` > 1 means several jobs shared the call (``engine_max_batch``)."""
    sizes = ", ".join(f"{count} image(s) of {width}x{height}" for count, width, height in images)
    owner: list[str] = []
    if jobs > 1:
        owner.append("engine_max_batch = 1")
    if not memory.vae_slicing and sum(count for count, _, _ in images) > 1:  # the decode of a batch is the peak
        owner.append("memory.vae_slicing = true")
    if not memory.vae_tiling:
        owner.append("memory.vae_tiling = true")
    if not memory.attention_slicing:
        owner.append("memory.attention_slicing = true")
    if memory.offload == "none":
        owner.append('memory.offload = "auto"')
    asked = f"; or ask the owner to set {', '.join(owner)}" if owner else "; this size does not fit this GPU"
    return f"the GPU ran out of memory rendering {sizes}: use a smaller --ar size or fewer images{asked}"
