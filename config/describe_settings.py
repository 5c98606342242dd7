"""/describe's settings (``[describe]``): which image-captioning model writes the prompt suggestions."""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_DESCRIBE_SOURCE = "Salesforce/blip-image-captioning-base"
"""BLIP base, captioning (about 1 GB): fetched once by the owner with ``python -m engine.describe pull``."""


class DescribeSettings(BaseModel):
    """``[describe]``: the captioning model (any ``AutoModelForImageTextToText``: BLIP, Florence-2, GIT)."""

    model_config = {"extra": "forbid"}

    source: str = Field(
        default=DEFAULT_DESCRIBE_SOURCE,
        max_length=500,
        description="a hub id in the local Hugging Face cache (`python -m engine.describe pull ID` fetches it), a "
        "local transformers folder, or 'tiny:blip' (a tiny random model, for tests); '' turns /describe off",
    )
    prompt: str = Field(
        default="",
        max_length=200,
        description="text given to the model with the image: BLIP continues it ('a painting of'); Florence-2 takes a "
        "task ('<MORE_DETAILED_CAPTION>' when empty)",
    )
