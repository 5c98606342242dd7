"""The ControlNet flags of a prompt: ``--cw X`` (the control weight, 0 to 2) and ``--controlnet NAME`` (which
ControlNet; by default the first one that serves the job's model family and control mode). Pure functions, called
by :mod:`bot.requests.prompt`'s parser; the rules that need the registry live in :mod:`bot.requests.control`."""

from __future__ import annotations

import math
import re
from typing import Any

from bot.errors import PromptError
from engine.control_sources import CONTROL_WEIGHT_MAX, CONTROL_WEIGHT_MIN

CONTROL_WEIGHT_FORM = (
    f"--cw X with X from {CONTROL_WEIGHT_MIN:g} to {CONTROL_WEIGHT_MAX:g} (how strongly the control image steers; "
    "default 1), for example --cw 0.8"
)
_NUMBER = re.compile(r"[+]?(\d{1,3}(\.\d{0,3})?|\.\d{1,3})")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def parse_control_weight(value: str, flag: str, limits: Any = None) -> float:
    """``--cw``'s value: a number from 0 to 2. Raises PromptError showing the valid form."""
    if not _NUMBER.fullmatch(value):
        raise PromptError(f"`--{flag} {value}` is not valid: use {CONTROL_WEIGHT_FORM}", flag=flag)
    number = float(value)
    if not (math.isfinite(number) and CONTROL_WEIGHT_MIN <= number <= CONTROL_WEIGHT_MAX):
        raise PromptError(f"`--{flag} {value}` is out of range: use {CONTROL_WEIGHT_FORM}", flag=flag)
    return number


def parse_controlnet_name(value: str, flag: str, limits: Any = None) -> str:
    """``--controlnet``'s value: a registry name (whether it exists is checked with the registry)."""
    name = value.strip().lower()
    if not _NAME.fullmatch(name):
        raise PromptError(f"`--{flag} {value}` is not a ControlNet name; use --{flag} NAME", flag=flag)
    return name
