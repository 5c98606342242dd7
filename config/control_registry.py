"""The ControlNet registry: ControlNets (``[controlnet.NAME]``) with the family they were trained for and the
control modes they serve, the depth estimator depth mode needs (``[depth]``), and the tiny ControlNets built in."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from config.model_registry import UNetFamily
from engine.control_sources import CONTROL_MODES

ControlMode = Literal["canny", "depth", "lineart", "scribble", "raw"]


class ControlNetSpec(BaseModel):
    """One ``[controlnet.NAME]`` entry: where the ControlNet's weights live, its family and the modes it serves."""

    model_config = {"extra": "forbid"}

    source: str = Field(
        description="'tiny:controlnet-sd15', 'tiny:controlnet-sdxl', a local diffusers ControlNet folder (with "
        "config.json) or a Hugging Face hub id already in the local cache"
    )
    family: UNetFamily = Field(default="sd15", description="the model family it was trained for: sd15, sd2 or sdxl")
    modes: list[ControlMode] = Field(
        default_factory=lambda: ["canny"],
        min_length=1,
        description="the control modes it serves: canny, depth, lineart, scribble, raw",
    )

    @field_validator("modes")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class DepthSpec(BaseModel):
    """``[depth]``: the depth estimator of ``control_mode: depth`` (a transformers depth-estimation model)."""

    model_config = {"extra": "forbid"}

    source: str = Field(
        default="",
        description="a local transformers depth-estimation folder (DPT, Depth Anything), a hub id in the local cache, "
        "or 'tiny:depth'; empty: depth mode is off",
    )


BUILTIN_CONTROLNETS: dict[str, ControlNetSpec] = {
    "tiny-controlnet": ControlNetSpec(source="tiny:controlnet-sd15", family="sd15", modes=list(CONTROL_MODES)),
    "tiny-controlnet-sdxl": ControlNetSpec(source="tiny:controlnet-sdxl", family="sdxl", modes=list(CONTROL_MODES)),
}
"""Random-weight ControlNets made from the tiny models' UNets (``ControlNetModel.from_unet``): they serve the tiny
models only (a job on a real model never picks them), so tests and a first run work without a download."""


def controlnet_registry(owned: dict[str, ControlNetSpec]) -> dict[str, ControlNetSpec]:
    """The built-in ControlNets merged with the owner's ``[controlnet.NAME]`` (which win on a name clash)."""
    return {**BUILTIN_CONTROLNETS, **owned}
