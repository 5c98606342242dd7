"""``python -m bot generate``'s ControlNet options: ``--control FILE``, ``--control-mode MODE`` and ``--cw X``.

The file is read and checked like ``--image`` (size, pixels, decompression bombs) before any database or engine is
opened; the mode and weight are checked with the rest of the request (:mod:`bot.requests.control`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from engine.control_sources import CONTROL_MODES, CONTROL_WEIGHT_MAX, CONTROL_WEIGHT_MIN

if TYPE_CHECKING:
    from bot.requests.request_options import TaskOptions


def add_control_arguments(generate: argparse.ArgumentParser) -> None:
    """``--control``, ``--control-mode`` and ``--cw`` on the ``generate`` parser."""
    generate.add_argument(
        "--control", type=Path, metavar="FILE", help="ControlNet: follow this image's edges, depth or lines"
    )
    generate.add_argument(
        "--control-mode",
        choices=CONTROL_MODES,
        help="what to follow in --control (default canny; raw: the file already is a control map)",
    )
    generate.add_argument(
        "--cw",
        type=float,
        metavar="X",
        help=f"how strongly --control steers ({CONTROL_WEIGHT_MIN:g}-{CONTROL_WEIGHT_MAX:g}, default 1)",
    )


def with_control(options: TaskOptions, args: argparse.Namespace) -> TaskOptions:
    """``options`` with the parsed ControlNet arguments."""
    return dataclasses.replace(options, control=args.control, control_mode=args.control_mode, control_weight=args.cw)
