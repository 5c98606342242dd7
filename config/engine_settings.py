"""Where engines run: one per local GPU, or one per GPU of a Ray cluster (``[engine]``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

DEVICE_PATTERN = re.compile(r"^(cpu|mps|xpu|cuda)(:\d{1,2})?$")
"""An engine's device: ``cuda:1``, ``cuda``, ``cpu``, ``mps``, ``xpu`` (an index only for ``cuda``)."""


class EngineSettings(BaseModel):
    """``[engine]``: how many engine processes render, on which devices or hosts."""

    model_config = {"extra": "forbid"}

    devices: Literal["auto"] | list[str] = Field(
        default="auto",
        description='"auto": one engine per visible GPU (one engine on `device` without one); or a list such as '
        '["cuda:0", "cuda:1"]',
    )
    backend: Literal["local", "ray"] = Field(
        default="local", description='"local": engine processes on this machine; "ray": one Ray actor per GPU'
    )
    ray_address: str = Field(
        default="auto", min_length=1, description='the Ray cluster to join ("auto": the one `ray start` runs here)'
    )
    ray_namespace: str = Field(default="imaginebot", min_length=1)
    ray_resources: dict[str, float] = Field(
        default_factory=lambda: {"GPU": 1.0}, description="what each engine actor asks Ray for"
    )
    ray_engines: Literal["auto"] | int = Field(
        default="auto", description='"auto": as many engines as the cluster has ray_resources for; or a number'
    )
    ray_poll_s: float = Field(default=5.0, gt=0, le=3600, description="how often hosts joining or leaving are seen")
    ray_data_dir: str = Field(
        default="",
        description="the engines' data folder on each Ray host (built models, compile cache); empty: a temporary one",
    )

    @field_validator("devices")
    @classmethod
    def _known_devices(cls, value: Literal["auto"] | list[str]) -> Literal["auto"] | list[str]:
        if value == "auto":
            return value
        if not value:
            raise ValueError('list at least one device, or write "auto"')
        cleaned = [device.strip().lower() for device in value]
        for device in cleaned:
            match = DEVICE_PATTERN.match(device)
            if match is None or (match.group(2) and match.group(1) != "cuda"):
                raise ValueError(f"{device!r} is not a device; write cuda:0, cuda:1, … (or cpu, mps, xpu)")
        return cleaned

    @field_validator("ray_resources")
    @classmethod
    def _positive_resources(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("name what each engine needs, e.g. {GPU = 1}")
        for name, amount in value.items():
            if amount <= 0:
                raise ValueError(f"{name} = {amount:g}: each amount must be more than 0")
        return value

    @field_validator("ray_engines")
    @classmethod
    def _at_least_one(cls, value: Literal["auto"] | int) -> Literal["auto"] | int:
        if value != "auto" and value < 1:
            raise ValueError('write "auto" or a number of engines from 1')
        return value
