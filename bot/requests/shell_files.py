"""``python -m bot generate``'s ``--image`` and ``--mask`` files, read and checked like Discord uploads."""

from __future__ import annotations

from bot.errors import PromptError
from bot.requests.request_options import TaskOptions
from bot.requests.uploads import CheckedImage, UploadError, UploadLimits, check_upload, read_upload_file
from config.settings import Settings


def upload_limits(settings: Settings) -> UploadLimits:
    """The size and pixel limits every uploaded image obeys."""
    return UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels)


def check_shell_files(settings: Settings, options: TaskOptions) -> dict[str, CheckedImage]:
    """Read (size checked first) and check ``generate``'s ``--image`` and ``--mask`` like Discord uploads, before
    any database or engine is opened. Sync: run it in a thread from async code. Raises PromptError naming the file."""
    limits = upload_limits(settings)
    checked: dict[str, CheckedImage] = {}
    for name, path in (("image", options.image), ("mask", options.mask)):
        if path is None:
            continue
        try:
            checked[name] = check_upload(read_upload_file(path, limits), limits=limits, mask=name == "mask")
        except UploadError as error:
            raise PromptError(f"--{name} {path}: {error}", flag=name) from None
    return checked
