"""The engine's memory and speed switches."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainValidator

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def parse_switch(value: object) -> bool | Literal["auto"]:
    """``auto``, or a boolean written as TOML ``true``/``false`` or as environment text (``true``, ``0``, ``off``…)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word == "auto":
            return "auto"
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
    raise ValueError(f'{value!r} is not one of true, false, "auto"')


Switch = Annotated[bool | Literal["auto"], PlainValidator(parse_switch)]
"""``auto`` (the engine decides by device and model family), or ``true``/``false`` (the owner decides)."""


class MemorySettings(BaseModel):
    """Memory and speed switches of the engine (see config/bot.example.toml)."""

    model_config = {"extra": "forbid"}

    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    offload: Literal["none", "model", "sequential", "auto"] = "none"
    channels_last: Switch = Field(default="auto", description="UNet in channels_last; auto: on for SD1.x/2.x on CUDA")
    fused_qkv: Switch = Field(default="auto", description="fused QKV projections; auto: on for SD1.x/2.x on CUDA")
    tf32: bool = Field(default=True, description="TF32 for what still runs in fp32 on CUDA")
    compile: bool = False
    compile_mode: Literal["regional", "full"] = Field(
        default="regional", description="compile the UNet's repeated blocks (regional) or the whole UNet (full)"
    )
    quantize: Literal["none", "8bit", "4bit"] = "none"
    quantize_text_encoders: Literal["none", "8bit", "4bit"] = Field(
        default="none", description="bitsandbytes quantization of the T5 text encoder of SD3/FLUX.1 models (CUDA only)"
    )
    sdpa: bool = True
