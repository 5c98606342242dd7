"""``memory.offload = "auto"`` for models with big text encoders (SD3's and FLUX.1's T5-XXL, ~9.5 GB in bf16):
when the whole pipeline does not fit, keep the denoiser and the VAE on the GPU and stream only the text encoders
from the CPU while a prompt is encoded, before reaching for whole-model offload.

:func:`choose_component_offload` is the pure decision over free memory and each component's bytes; the rest
applies it to a loaded pipeline. Text-encoder offload streams each encoder's layers to the GPU as they run
(accelerate's ``cpu_offload``, what diffusers' sequential offload does per component): the GPU holds one layer of
them at a time, at the cost of moving their weights over PCIe once per prompt (about a second for T5-XXL), while
the denoising steps, which run 4-50 times per image, stay at full speed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

GIB = 2**30
RENDER_HEADROOM = 4 * GIB
"""GPU memory a render needs beyond the weights that stay on the GPU (activations of 4 images at 1024², the VAE
decode, CUDA's context and the allocator's slack): an estimate until ``bench.gpu`` measures the flow models."""
TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")
TEXT_ENCODER_OFFLOAD = "text_encoders"
"""The offload mode ``auto`` may pick for a model with text encoders: only they live on the CPU."""


def choose_component_offload(free_bytes: int | None, sizes: Mapping[str, int], movable: tuple[str, ...] = ()) -> str:
    """``none`` when every component fits with :data:`RENDER_HEADROOM`; ``text_encoders`` when all but the
    ``movable`` text encoders fit; ``model`` (one component on the GPU at a time) when the largest component fits;
    ``sequential`` (layer by layer) otherwise. ``free_bytes`` None (the CPU): ``none``."""
    if free_bytes is None:
        return "none"
    total = sum(sizes.values())
    if total + RENDER_HEADROOM <= free_bytes:
        return "none"
    staying = total - sum(size for name, size in sizes.items() if name in movable)
    if movable and staying + RENDER_HEADROOM <= free_bytes:
        return TEXT_ENCODER_OFFLOAD
    if max(sizes.values(), default=0) + RENDER_HEADROOM <= free_bytes:
        return "model"
    return "sequential"


def module_bytes(module: Any) -> int:
    """Bytes of a module's parameters and buffers as they are stored (quantized ones at their packed size)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def is_quantized(module: Any) -> bool:
    """Whether bitsandbytes quantized the module (its weights cannot be moved between devices)."""
    return bool(getattr(module, "is_loaded_in_4bit", False) or getattr(module, "is_loaded_in_8bit", False)) or (
        getattr(module, "hf_quantizer", None) is not None
    )


def pipeline_sizes(pipe: Any) -> tuple[dict[str, int], tuple[str, ...]]:
    """Each module component's bytes, and the text encoders that may be streamed (the unquantized ones)."""
    import torch

    modules = {name: c for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}
    movable = tuple(name for name in TEXT_ENCODERS if name in modules and not is_quantized(modules[name]))
    return {name: module_bytes(module) for name, module in modules.items()}, movable


def resolve_offload(pipe: Any, requested: str, free_bytes: int | None, weight_bytes: int) -> str:
    """The offload a load gets: ``auto`` on an SD3/FLUX.1 pipeline (one with a transformer) decides by component
    (:func:`choose_component_offload`); every other case is :func:`engine.memory.choose_offload`'s."""
    from engine.memory import choose_offload

    if requested != "auto" or getattr(pipe, "transformer", None) is None:
        return choose_offload(requested, free_bytes, weight_bytes)
    sizes, movable = pipeline_sizes(pipe)
    return choose_component_offload(free_bytes, sizes, movable)


def offload_text_encoders(pipe: Any, device: str) -> tuple[str, ...]:
    """Put every component but the unquantized text encoders on ``device``, and have those stream their layers
    from the CPU to ``device`` as they run; returns the streamed encoders' names."""
    import torch
    from accelerate import cpu_offload

    sizes, movable = pipeline_sizes(pipe)
    # diffusers takes the execution device (where latents and prompt embeddings are made) from the hooks of the
    # components not excluded from offload; the streamed encoders' weights themselves sit on the meta device
    pipe._exclude_from_cpu_offload = [name for name in sizes if name not in movable]
    for name, component in pipe.components.items():
        if not isinstance(component, torch.nn.Module):
            continue
        if name in movable:
            cpu_offload(component, torch.device(device), offload_buffers=len(component._parameters) > 0)
        elif not is_quantized(component):  # bitsandbytes put quantized ones on the GPU already
            component.to(device)
    log.info("text encoders %s stream from the CPU; the rest stays on %s", ", ".join(movable) or "-", device)
    return movable
