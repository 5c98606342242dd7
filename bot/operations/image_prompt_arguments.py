"""The command line's image prompt options: ``generate --image-prompt FILE --iw X`` and the ``blend`` command's
arguments (what :mod:`bot.operations.image_prompt_commands` runs). Light: the parser imports it at start-up."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ImagineError
from bot.requests.image_prompt_limits import BLEND_DIMENSIONS, MAX_BLEND_IMAGES, MAX_IMAGE_WEIGHT, MIN_BLEND_IMAGES

if TYPE_CHECKING:
    from bot.requests.request_options import TaskOptions


def image_weight(text: str) -> float:
    """``--iw``'s argparse type: the prompt flag's own rule (0 to 2)."""
    from bot.requests.image_prompts import parse_image_weight

    try:
        return parse_image_weight(text, "iw")
    except ImagineError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_image_prompt_arguments(generate: argparse.ArgumentParser) -> None:
    """``--image-prompt FILE`` (up to 5) and ``--iw X`` on the ``generate`` parser."""
    generate.add_argument(
        "--image-prompt",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        dest="image_prompt",
        help="an image that prompts the grid too (IP-Adapter); repeat it for up to 5",
    )
    generate.add_argument(
        "--iw", type=image_weight, metavar="X", help=f"how strongly the image prompts steer (0-{MAX_IMAGE_WEIGHT:g})"
    )


def with_image_prompts(options: TaskOptions, args: argparse.Namespace) -> TaskOptions:
    """``options`` with the parsed image prompt arguments."""
    return dataclasses.replace(options, image_prompts=tuple(args.image_prompt), image_weight=args.iw)


def add_blend_command(commands: Any) -> None:
    """``blend FILE FILE … [--dimensions D] [-o OUT]``."""
    blend = commands.add_parser("blend", help=f"mix {MIN_BLEND_IMAGES} to {MAX_BLEND_IMAGES} images into a grid PNG")
    blend.add_argument("images", nargs="+", type=Path, metavar="FILE", help="the images to mix (PNG, JPEG or WebP)")
    blend.add_argument(
        "--dimensions",
        choices=tuple(BLEND_DIMENSIONS),
        default="square",
        help="the shape: portrait 2:3, square 1:1 (default) or landscape 3:2",
    )
    blend.add_argument("-o", "--output", help="where to write the grid PNG (a folder: <folder>/imagine_<job>.png)")
