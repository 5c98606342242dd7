"""/blend: 2 to 5 images mixed into one grid through the IP-Adapter, with an empty text prompt. Pure: no I/O.

The job is a text-to-image job of the member's model (their /settings for model, steps and sampler apply) whose
only prompt is its images: each goes through the adapter's image encoder and their embeddings are averaged in the
engine. ``dimensions`` picks the shape as Midjourney's does: portrait 2:3, square 1:1, landscape 3:2.
"""

from __future__ import annotations

from dataclasses import replace

from bot.errors import PromptError
from bot.jobs import Kind
from bot.requests.family_support import check_family_support
from bot.requests.image_prompt_limits import BLEND_DIMENSIONS as BLEND_DIMENSIONS
from bot.requests.image_prompt_limits import MAX_BLEND_IMAGES as MAX_BLEND_IMAGES
from bot.requests.image_prompt_limits import MIN_BLEND_IMAGES as MIN_BLEND_IMAGES
from bot.requests.image_prompts import with_image_prompts
from bot.requests.preferences import Preferences, apply_preferences
from bot.requests.preparation import Prepared, build_params, prompt_limits, random_seed, usable_models
from bot.requests.prompt import ParsedPrompt
from bot.requests.request_options import ImageInput
from config.settings import Settings


def blend_label(images: int, dimensions: str) -> str:
    """What a blend job shows as its prompt (it renders an empty text prompt)."""
    return f"blend of {images} images ({dimensions})"


def check_blend(images: int, dimensions: str) -> tuple[int, int]:
    """The aspect ratio of a blend of ``images`` images in ``dimensions``. Raises PromptError naming what to
    change."""
    if not MIN_BLEND_IMAGES <= images <= MAX_BLEND_IMAGES:
        raise PromptError(
            f"/blend mixes {MIN_BLEND_IMAGES} to {MAX_BLEND_IMAGES} images; {images} were given. "
            f"Attach {MIN_BLEND_IMAGES} to {MAX_BLEND_IMAGES} images",
            flag="images",
        )
    if dimensions not in BLEND_DIMENSIONS:
        raise PromptError(
            f"`{dimensions}` is not a /blend shape; use one of: {', '.join(BLEND_DIMENSIONS)}", flag="dimensions"
        )
    return BLEND_DIMENSIONS[dimensions]


def prepare_blend(
    settings: Settings,
    images: int,
    dimensions: str = "square",
    preferences: Preferences | None = None,
    *,
    owner: bool = False,
) -> list[Prepared]:
    """The one job of a /blend of ``images`` images (announced: received and attached later), checked against
    every rule before anything is charged: the count, the shape, the member's model and its IP-Adapter. Raises
    PromptError."""
    aspect = check_blend(images, dimensions)
    parsed = ParsedPrompt(text="", aspect=aspect, flags=("ar",))  # the shape is the command's, not /settings'
    if preferences is not None:
        limits = prompt_limits(settings, owner=owner)
        parsed = apply_preferences(parsed, replace(preferences, aspect=None), limits)
        if parsed.model is not None and parsed.model not in usable_models(settings, owner=owner):
            raise PromptError(
                f"your default model `{parsed.model}` (from /settings) is not available on this server any more; "
                "choose another in /settings",
                flag="model",
            )
    params = build_params(parsed, settings, random_seed(), owner=owner)
    check_family_support(params, settings, image_prompts=True)
    announced = tuple(ImageInput.announced() for _ in range(images))
    params = with_image_prompts(params, settings, attachments=announced, owner=owner)
    return [Prepared(Kind.BLEND, blend_label(images, dimensions), params)]
