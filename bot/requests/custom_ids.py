"""The ``custom_id`` scheme of result buttons: ``ib:<action>:<job id>:<image index>``.

The job id inside makes a button work after a restart (discord.py matches it with a DynamicItem template).
The scheme is stable: messages posted months ago still carry it. At most 100 characters (Discord's limit).
"""

from __future__ import annotations

import re
from enum import StrEnum

PREFIX = "ib"
TEMPLATE = rf"{PREFIX}:(?P<action>[A-Z0-9]{{1,4}}):(?P<job>[0-9]{{1,19}}):(?P<index>[0-9])"
_PATTERN = re.compile(rf"^{TEMPLATE}$")


class Action(StrEnum):
    """What a result button does."""

    UPSCALE = "U"
    VARY = "V"
    REROLL = "R"
    VARY_SUBTLE = "VS"
    VARY_STRONG = "VX"
    ZOOM_OUT_15 = "Z15"
    ZOOM_OUT_2 = "Z2"
    PAN_LEFT = "PL"
    PAN_RIGHT = "PR"
    PAN_UP = "PU"
    PAN_DOWN = "PD"


def make_custom_id(action: Action, job_id: int, index: int = 0) -> str:
    """``index`` is the 0-based image of the grid (the U1 button carries 0)."""
    if not 0 <= index <= 9:
        raise ValueError(f"image index must be 0..9, got {index}")
    if job_id < 0:
        raise ValueError(f"job id must not be negative, got {job_id}")
    return f"{PREFIX}:{action.value}:{job_id}:{index}"


def parse_custom_id(custom_id: str) -> tuple[Action, int, int] | None:
    """The action, job id and image index of a result button, or None for anything else."""
    match = _PATTERN.match(custom_id)
    if match is None:
        return None
    try:
        action = Action(match.group("action"))
    except ValueError:
        return None
    return action, int(match.group("job")), int(match.group("index"))
