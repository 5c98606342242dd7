"""The engine's memory and speed switches."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class MemorySettings(BaseModel):
    """Memory and speed switches of the engine (see config/bot.example.toml)."""

    model_config = {"extra": "forbid"}

    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    offload: Literal["none", "model", "sequential", "auto"] = "none"
    channels_last: bool = False
    compile: bool = False
    quantize: Literal["none", "8bit", "4bit"] = "none"
    sdpa: bool = True
