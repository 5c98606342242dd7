"""``python -m bot generate``'s ``--image`` and ``--mask`` files, read and checked like Discord uploads."""

from __future__ import annotations

from collections.abc import Mapping

from bot.errors import PromptError
from bot.requests.request_options import ImageInput, RequestOptions, TaskOptions
from bot.requests.uploads import CheckedImage, UploadError, UploadLimits, check_upload, read_upload_file
from config.settings import Settings

IMAGE_PROMPT_KEY = "image_prompt_"
"""The checked files of ``--image-prompt``, in order: ``image_prompt_0``, ``image_prompt_1``, …"""


def upload_limits(settings: Settings) -> UploadLimits:
    """The size and pixel limits every uploaded image obeys."""
    return UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels)


def check_shell_files(settings: Settings, options: TaskOptions) -> dict[str, CheckedImage]:
    """Read (size checked first) and check ``generate``'s ``--image`` and ``--mask`` like Discord uploads, before
    any database or engine is opened. Sync: run it in a thread from async code. Raises PromptError naming the file."""
    limits = upload_limits(settings)
    checked: dict[str, CheckedImage] = {}
    for name, path in (("image", options.image), ("mask", options.mask), ("control", options.control)):
        if path is None:
            continue
        try:
            checked[name] = check_upload(read_upload_file(path, limits), limits=limits, mask=name == "mask")
        except UploadError as error:
            raise PromptError(f"--{name} {path}: {error}", flag=name) from None
    for index, path in enumerate(options.image_prompts):  # keys image_prompt_0, image_prompt_1, … in order
        try:
            checked[f"{IMAGE_PROMPT_KEY}{index}"] = check_upload(read_upload_file(path, limits), limits=limits)
        except UploadError as error:
            raise PromptError(f"--image-prompt {path}: {error}", flag="iw") from None
    return checked


def shell_request_options(options: TaskOptions, inputs: Mapping[str, ImageInput]) -> RequestOptions:
    """The request a ``generate`` command makes, with its files once staged (``inputs`` by the names
    :func:`check_shell_files` gives them)."""
    return RequestOptions(
        image=inputs.get("image"),
        mask=inputs.get("mask"),
        strength=options.strength,
        sweeps=options.sweeps,
        control=inputs.get("control"),
        control_mode=options.control_mode,
        image_prompts=tuple(item for name, item in inputs.items() if name.startswith(IMAGE_PROMPT_KEY)),
    )
