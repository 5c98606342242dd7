"""Memory and speed options: attention, VAE slicing/tiling, CPU offload, channels_last, torch.compile, 4/8-bit."""

from __future__ import annotations

import logging
from typing import Any

import torch

from engine.protocol import MemoryOptions

log = logging.getLogger(__name__)

OFFLOAD_MODES = ("none", "model", "sequential", "auto")
QUANTIZE_MODES = ("none", "8bit", "4bit")


def check_quantization(mode: str, device: str) -> None:
    """bitsandbytes quantization needs CUDA and the package; raise a ValueError saying what to change."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize={mode!r} is not one of {', '.join(QUANTIZE_MODES)}")
    if mode == "none":
        return
    if device != "cuda":
        raise ValueError(
            f"quantize={mode!r} needs a CUDA GPU (bitsandbytes), but this engine runs on {device}; "
            "set memory.quantize to none"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise ValueError(
            f"quantize={mode!r} needs the bitsandbytes package: pip install 'imaginebot[quant]'"
        ) from error


def quantization_config(mode: str) -> Any:
    """A diffusers PipelineQuantizationConfig quantizing only the denoiser, or None."""
    if mode == "none":
        return None
    from diffusers.quantizers import PipelineQuantizationConfig

    if mode == "4bit":
        return PipelineQuantizationConfig(
            quant_backend="bitsandbytes_4bit",
            quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": torch.float16},
            components_to_quantize=["unet"],
        )
    return PipelineQuantizationConfig(
        quant_backend="bitsandbytes_8bit", quant_kwargs={"load_in_8bit": True}, components_to_quantize=["unet"]
    )


def choose_offload(requested: str, free_bytes: int | None, weight_bytes: int) -> str:
    """Resolve ``auto``: no offload when the weights fit twice over, model offload when they fit, else sequential.

    ``free_bytes`` is None on a device without a free-memory figure (the CPU): nothing to offload to there.
    """
    if requested not in OFFLOAD_MODES:
        raise ValueError(f"offload={requested!r} is not one of {', '.join(OFFLOAD_MODES)}")
    if requested != "auto":
        return requested
    if free_bytes is None or free_bytes >= 2 * weight_bytes:
        return "none"
    if free_bytes >= weight_bytes:
        return "model"
    return "sequential"


def free_device_bytes(device: str) -> int | None:
    """Free memory of the accelerator, or None (CPU, or a backend that does not say)."""
    if device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    return None


def apply_memory_options(pipe: Any, options: MemoryOptions, device: str) -> list[str]:
    """Move ``pipe`` to ``device`` with the options applied; returns what was applied, for the log."""
    applied: list[str] = []
    weight_bytes = sum(
        p.numel() * p.element_size()
        for c in pipe.components.values()
        if isinstance(c, torch.nn.Module)
        for p in c.parameters()
    )
    offload = choose_offload(options.offload, free_device_bytes(device), weight_bytes)
    if offload != "none" and device == "cpu":
        log.info("offload=%s has no effect on the CPU", offload)
        offload = "none"
    if not options.sdpa:
        from diffusers.models.attention_processor import AttnProcessor

        pipe.unet.set_attn_processor(AttnProcessor())
        applied.append("classic attention")
    if options.attention_slicing:
        pipe.enable_attention_slicing()
        applied.append("attention slicing")
    if options.vae_slicing:
        pipe.vae.enable_slicing()
        applied.append("vae slicing")
    if options.vae_tiling:
        pipe.vae.enable_tiling()
        applied.append("vae tiling")
    if options.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
        applied.append("model cpu offload")
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
        applied.append("sequential cpu offload")
    else:
        pipe.to(device)
    if options.compile:
        pipe.unet = torch.compile(pipe.unet)
        applied.append("torch.compile")
    return applied
