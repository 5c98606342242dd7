"""Which component of a model bitsandbytes quantizes, and how: the denoiser (``memory.quantize``: the UNet of
SD1.x/2.x/SDXL, the transformer of SD3/FLUX.1) and the T5 text encoder of SD3/FLUX.1
(``memory.quantize_text_encoders``), each on its own setting.

The decisions are pure functions (no torch, no bitsandbytes); :func:`pipeline_quantization` turns them into the
``PipelineQuantizationConfig`` diffusers' ``from_pretrained`` takes, with diffusers' ``BitsAndBytesConfig`` for the
denoiser and transformers' for the text encoder. Building those needs bitsandbytes, which needs a CUDA GPU:
:func:`check_quantizations` refuses a CPU engine first, with the setting to change.
"""

from __future__ import annotations

from typing import Any

from engine.protocol import MemoryOptions

QUANTIZE_MODES = ("none", "8bit", "4bit")
DENOISER_OF = {"sd15": "unet", "sd2": "unet", "sdxl": "unet", "sd3": "transformer", "flux": "transformer"}
"""The denoiser component of each family's pipeline."""
T5_OF = {"sd3": "text_encoder_3", "flux": "text_encoder_2"}
"""The T5-XXL encoder of the families that have one (SD3's third encoder, FLUX.1's second); the CLIP encoders are
small (0.1-0.7 B parameters) and stay at the engine's dtype."""


def quantization_plan(family: str, quantize: str, quantize_text_encoders: str = "none") -> dict[str, str]:
    """Component name → ``8bit``/``4bit`` for what bitsandbytes quantizes; components left out stay unquantized.

    The denoiser gets ``quantize`` whatever the family; the T5 encoder (SD3, FLUX.1) gets ``quantize_text_encoders``;
    a UNet family has no T5, so that setting changes nothing there."""
    for setting, mode in (("quantize", quantize), ("quantize_text_encoders", quantize_text_encoders)):
        if mode not in QUANTIZE_MODES:
            raise ValueError(f"memory.{setting} = {mode!r} is not one of {', '.join(QUANTIZE_MODES)}")
    plan: dict[str, str] = {}
    if quantize != "none":
        plan[DENOISER_OF.get(family, "unet")] = quantize
    if quantize_text_encoders != "none" and family in T5_OF:
        plan[T5_OF[family]] = quantize_text_encoders
    return plan


def bnb_kwargs(mode: str, compute_dtype: Any) -> dict[str, Any]:
    """The ``BitsAndBytesConfig`` arguments of a mode: NF4 computing in ``compute_dtype`` for ``4bit``, LLM.int8()
    for ``8bit``."""
    if mode == "4bit":
        return {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": compute_dtype}
    if mode == "8bit":
        return {"load_in_8bit": True}
    raise ValueError(f"{mode!r} is not a bitsandbytes mode (8bit, 4bit)")


def quantization_problem(options: MemoryOptions, device: str, has_bitsandbytes: bool) -> str:
    """Why the quantization settings cannot run here (one line saying what to change), or ``""`` when they can."""
    settings = (("quantize", options.quantize), ("quantize_text_encoders", options.quantize_text_encoders))
    for setting, mode in settings:
        if mode not in QUANTIZE_MODES:
            return f"memory.{setting}={mode!r} is not one of {', '.join(QUANTIZE_MODES)}"
    asked = [(setting, mode) for setting, mode in settings if mode != "none"]
    if not asked:
        return ""
    names = " and ".join(f"memory.{setting}={mode!r}" for setting, mode in asked)
    need = "needs" if len(asked) == 1 else "need"
    if device != "cuda":
        fixes = " and ".join(f"memory.{setting}" for setting, _ in asked)
        return f"{names} {need} a CUDA GPU (bitsandbytes), but this engine runs on {device}; set {fixes} to none"
    if not has_bitsandbytes:
        return f"{names} {need} the bitsandbytes package: pip install 'imaginebot[quant]'"
    return ""


def check_quantizations(options: MemoryOptions, device: str) -> None:
    """Raise a ValueError saying what to change when the quantization settings cannot run on ``device``."""
    problem = quantization_problem(options, device, has_bitsandbytes=_has_bitsandbytes())
    if problem:
        raise ValueError(problem)


def _has_bitsandbytes() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def pipeline_quantization(family: str, options: MemoryOptions, compute_dtype: Any) -> Any:
    """diffusers' ``PipelineQuantizationConfig`` for :func:`quantization_plan`, or None when nothing is quantized.
    Needs bitsandbytes (call :func:`check_quantizations` first)."""
    plan = quantization_plan(family, options.quantize, options.quantize_text_encoders)
    if not plan:
        return None
    import diffusers
    import transformers
    from diffusers.quantizers import PipelineQuantizationConfig

    from engine.memory import say_cast_once

    if "8bit" in plan.values():
        say_cast_once()
    mapping: dict[str, Any] = {}
    for component, mode in plan.items():
        config_class = transformers.BitsAndBytesConfig if component.startswith("text_encoder") else None
        config_class = config_class or diffusers.BitsAndBytesConfig
        mapping[component] = config_class(**bnb_kwargs(mode, compute_dtype))
    return PipelineQuantizationConfig(quant_mapping=mapping)
