"""The image safety check's settings (``[safety]``): whether rendered images are checked, by which classifier, and
what happens to a flagged one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

DEFAULT_SAFETY_CLASSIFIER = "CompVis/stable-diffusion-safety-checker"
"""diffusers' Stable Diffusion safety checker on the Hugging Face hub (a CLIP ViT-L/14 and its NSFW concepts)."""

SafetyAction = Literal["spoiler", "withhold"]


class SafetySettings(BaseModel):
    """``[safety]``: an optional check of every rendered image. Channels Discord marks age-restricted skip it."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(default=False, description="check every rendered image (not in age-restricted channels)")
    classifier: str = Field(
        default=DEFAULT_SAFETY_CLASSIFIER,
        min_length=1,
        description="diffusers' StableDiffusionSafetyChecker: a hub id, a folder holding it and its "
        "preprocessor_config.json, or a Stable Diffusion pipeline folder with safety_checker/ and feature_extractor/",
    )
    action: SafetyAction = Field(
        default="spoiler",
        description="a flagged result: 'spoiler' posts it hidden behind a spoiler with the reason; 'withhold' posts "
        "nothing, fails the job with the reason and refunds it",
    )
