"""The limits of image prompts and /blend, as plain constants: the command line's parser reads them at start-up
without importing the request rules that use them (:mod:`bot.requests.image_prompts`, :mod:`bot.requests.blend`)."""

from __future__ import annotations

MAX_IMAGE_PROMPTS = 5
"""The most image prompts one job takes (attachments and links together; /blend's most images too)."""
MAX_IMAGE_WEIGHT = 2.0
MIN_BLEND_IMAGES = 2
MAX_BLEND_IMAGES = MAX_IMAGE_PROMPTS
BLEND_DIMENSIONS: dict[str, tuple[int, int]] = {"portrait": (2, 3), "square": (1, 1), "landscape": (3, 2)}
"""/blend's ``dimensions`` and the aspect ratio each stands for."""
