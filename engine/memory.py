"""Memory and speed options: attention, VAE slicing/tiling, CPU offload, TF32, channels_last, fused QKV
projections, torch.compile, 4/8-bit. Which speed options a model gets is decided in :mod:`engine.speed`."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from engine.flow_families import denoiser
from engine.flow_offload import TEXT_ENCODER_OFFLOAD, offload_text_encoders, resolve_offload
from engine.protocol import MemoryOptions
from engine.speed import SpeedPlan

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


def quantization_config(mode: str, dtype: torch.dtype = torch.float16) -> Any:
    """A diffusers PipelineQuantizationConfig quantizing only the denoiser (4-bit computes in ``dtype``), or None."""
    if mode == "none":
        return None
    from diffusers.quantizers import PipelineQuantizationConfig

    if mode == "4bit":
        return PipelineQuantizationConfig(
            quant_backend="bitsandbytes_4bit",
            quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype},
            components_to_quantize=["unet"],
        )
    say_cast_once()
    return PipelineQuantizationConfig(
        quant_backend="bitsandbytes_8bit", quant_kwargs={"load_in_8bit": True}, components_to_quantize=["unet"]
    )


CAST_WARNING = "MatMul8bitLt: inputs will be cast"
"""bitsandbytes' 8-bit layers log this on every call when the engine computes in bf16 (thousands per image)."""


class OnceFilter(logging.Filter):
    """Lets a log message that starts with ``prefix`` through once, then drops its repeats."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(self.prefix):
            return True
        if self.seen:
            return False
        self.seen = True
        return True


def say_cast_once() -> None:
    """Keep bitsandbytes' per-call cast warning of 8-bit layers to one line per engine (installed once)."""
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(item, OnceFilter) for item in logger.filters):
        logger.addFilter(OnceFilter(CAST_WARNING))


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


@dataclass(frozen=True)
class Applied:
    """What a model load turned on: the memory options (for the log) and the speed settings (logged, sent to the
    bot in ``EngineReady.speed``), e.g. ``("bf16", "sdpa", "tf32", "channels_last", "fused qkv")``."""

    memory: tuple[str, ...]
    speed: tuple[str, ...]
    compiled: str = ""
    """``regional``, ``full``, or empty when the UNet is not compiled."""


def apply_memory_options(pipe: Any, options: MemoryOptions, device: str, plan: SpeedPlan) -> Applied:
    """Move ``pipe`` to ``device`` with the memory options and the speed ``plan`` applied; returns what is on."""
    applied: list[str] = []
    weight_bytes = sum(
        p.numel() * p.element_size()
        for c in pipe.components.values()
        if isinstance(c, torch.nn.Module)
        for p in c.parameters()
    )
    offload = resolve_offload(pipe, options.offload, free_device_bytes(device), weight_bytes)
    if offload != "none" and device == "cpu":
        log.info("offload=%s has no effect on the CPU", offload)
        offload = "none"
    if not options.sdpa and getattr(pipe, "unet", None) is not None:  # SD3/FLUX.1 attention has no classic form
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
    if device == "cuda":  # process-wide switches; they only change what runs in fp32
        torch.backends.cuda.matmul.allow_tf32 = plan.tf32
        torch.backends.cudnn.allow_tf32 = plan.tf32
    if plan.channels_last:
        denoiser(pipe).to(memory_format=torch.channels_last)
    fused = plan.fused_qkv and fuse_qkv(pipe)
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
        applied.append("model cpu offload")
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
        applied.append("sequential cpu offload")
    elif offload == TEXT_ENCODER_OFFLOAD:
        offload_text_encoders(pipe, device)
        applied.append("text encoders streamed from the cpu")
    else:
        pipe.to(device)
    compiled = ""
    if plan.compile:
        for component in pipe.components.values():  # inference only; peft freezes the weights of a LoRA job's
            if isinstance(component, torch.nn.Module):  # model, so graphs compiled unfrozen would compile again
                component.requires_grad_(False)
        from engine.warmup import compile_unet, uncompile

        try:
            compiled = compile_unet(denoiser(pipe), plan.compile, options.compile_backend)
        except Exception as error:  # an unknown backend, a torch without a compiler: the model still works
            uncompile(denoiser(pipe))
            log.warning("the UNet was not compiled (%s: %s); it runs uncompiled", type(error).__name__, error)
    speed = dataclasses.replace(plan, fused_qkv=fused, compile=compiled).labels()
    return Applied(tuple(applied), speed, compiled)


def fuse_qkv(pipe: Any) -> bool:
    """Fuse the attention projections of the UNet and the VAE (q, k, v into one matmul in self-attention; k, v in
    cross-attention) and set diffusers' ``FusedAttnProcessor2_0``; False, with a log line, where the model has none
    to fuse. The separate projections stay, so :func:`qkv_unfused` can go back to them for a LoRA."""
    from diffusers import AutoencoderKL

    if not hasattr(pipe, "fuse_qkv_projections"):
        log.info("fused qkv: %s has no fusable attention; left as it is", type(pipe).__name__)
        return False
    try:
        pipe.fuse_qkv_projections(unet=True, vae=isinstance(getattr(pipe, "vae", None), AutoencoderKL))
    except ValueError as error:  # attention with added KV projections
        log.info("fused qkv: not for this model (%s); left as it is", error)
        return False
    return True


def qkv_fused(unet: Any) -> bool:
    """Whether the UNet's attention runs on fused QKV projections."""
    from diffusers.models.attention_processor import FusedAttnProcessor2_0

    processors = getattr(unet, "attn_processors", {})
    return any(isinstance(processor, FusedAttnProcessor2_0) for processor in processors.values())


@contextlib.contextmanager
def qkv_unfused(unet: Any) -> Iterator[None]:
    """The body runs on the UNet's separate q/k/v projections, then the fused ones are back (nothing happens for a
    UNet that is not fused). LoRAs load into ``to_q``/``to_k``/``to_v``: on a fused UNet they would be ignored.

    The fused weights are never changed (a LoRA is an adapter beside the base weights, unloaded after the job), so
    fusing again is setting the same fused processors back: a compiled UNet sees the very objects it was
    compiled with."""
    if not qkv_fused(unet):
        yield
        return
    fused = dict(unet.attn_processors)
    # set_attn_processor empties the dict it is given, so it gets copies (diffusers' unfuse_qkv_projections hands
    # over the saved processors themselves: a second LoRA job would find them gone)
    unet.set_attn_processor(dict(unet.original_attn_processors))
    try:
        yield
    finally:
        unet.set_attn_processor(dict(fused))
