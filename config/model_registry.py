"""The model registry's entries: where a model's weights live and the defaults its jobs get, LoRA files, and the
models built in."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SIZE_STEP = 8
"""Width and height of every image are multiples of this: diffusers' Stable Diffusion pipelines refuse others, and
it is the VAE factor of SD1.x/2.x/SDXL. The tiny test models need only 4 (a VAE factor of 2 and one UNet
downsampling), so the pipelines' 8 is what they truly need too."""

Family = Literal["sd15", "sd2", "sdxl"]


class ModelSpec(BaseModel):
    """One entry of the model registry: where the weights live and the defaults a job gets."""

    model_config = {"extra": "forbid"}

    source: str = Field(
        description="'tiny:<family>', a local diffusers folder, a single .safetensors file, or a Hugging Face hub id"
    )
    config: str = Field(
        default="", description="for a single-file source: a local diffusers folder of the same family (no hub)"
    )
    family: Family = "sd15"
    steps: int = Field(default=25, ge=1, le=150)
    cfg: float = Field(default=7.0, ge=0.0, le=30.0)
    base_size: int = Field(default=512, ge=32, le=4096, description="side of the square image at --ar 1:1")
    size_multiple: int = Field(
        default=SIZE_STEP,
        ge=SIZE_STEP,
        le=128,
        multiple_of=SIZE_STEP,
        description="width and height are multiples of this (8: what Stable Diffusion pipelines accept)",
    )
    cost_multiplier: float = Field(default=1.0, gt=0.0, le=100.0)


class LoraSpec(BaseModel):
    """A LoRA file prompts may use as ``<lora:NAME:weight>``."""

    model_config = {"extra": "forbid"}

    path: str = Field(description="a .safetensors LoRA file (kohya/A1111 or diffusers format)")


BUILTIN_MODELS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(source="tiny:sd15", family="sd15", steps=4, cfg=5.0, base_size=64),
    "tiny-sdxl": ModelSpec(source="tiny:sdxl", family="sdxl", steps=4, cfg=5.0, base_size=64),
    "sd15": ModelSpec(source="stable-diffusion-v1-5/stable-diffusion-v1-5", family="sd15", steps=25),
    "sdxl": ModelSpec(source="stabilityai/stable-diffusion-xl-base-1.0", family="sdxl", steps=30, base_size=1024),
}
