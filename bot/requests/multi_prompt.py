"""Midjourney's multi-prompts and the flags that shape a grid, as the prompt parser reads them: pure text rules.

- ``a cat:: a dog::2``: ``::`` separates the prompt into parts; a number right after ``::`` (``::2``, ``::-0.5``,
  ``::.5``) is the weight of the part before it, 1 when none is written. Negative weights push away from a part as
  ``--no`` does, and ``--no words`` counts as ``words::-0.5``; the weights must add up to more than 0. A prompt
  without ``::`` is a plain prompt (:func:`parse_multi_prompt` gives ``()``). How the parts are blended is
  :mod:`engine.prompt_weights`'s rule.
- ``--chaos N`` (0 to 100, ``--c``): more variety between the images of a grid (CFG and part weights jittered from
  each image's seed, reproducibly).
- ``--stop N`` (10 to 100): stop after N percent of the steps and keep the unfinished image; charged for the steps
  that run.
- ``--q .25|.5|1|2`` (``--quality``): the model's (or ``--steps``') steps times that number, charged accordingly.

Every refusal is a :class:`~bot.errors.PromptError` naming the flag (``::`` for the multi-prompt) and its valid form.
"""

from __future__ import annotations

import math
import re

from bot.errors import PromptError
from engine.prompt_weights import FULL_STOP, MAX_CHAOS, NO_WEIGHT

MIN_STOP = 10
MAX_PARTS = 8
"""The most parts a multi-prompt may have (each is encoded on its own)."""
MAX_WEIGHT = 100.0
"""A part's weight is a number from -100 to 100."""
QUALITIES = (0.25, 0.5, 1.0, 2.0)
"""What ``--q`` may be: Midjourney's values."""
MULTI_PROMPT = "::"
MULTI_PROMPT_FORM = "parts separated by `::`, each followed by its weight, e.g. `a cat:: a dog::2 snow::-0.5`"

_WEIGHT_TOKEN = re.compile(r"-?[\d.]+(?=\s|,|$)")
"""What is read as a weight right after ``::``: digits (a point, a sign) up to a space, a comma or the end;
``::3d render`` is a part that starts with "3d"."""
_WEIGHT = re.compile(r"-?(?:\d{1,6}(?:\.\d{0,6})?|\.\d{1,6})")


def _weight(token: str) -> float:
    if not _WEIGHT.fullmatch(token):
        raise PromptError(f"`::{token}` is not a weight: write a number right after `::`, e.g. `a dog::2`", flag="::")
    weight = float(token)
    if not -MAX_WEIGHT <= weight <= MAX_WEIGHT:
        raise PromptError(
            f"`::{token}` is out of range: a part's weight is a number from {-MAX_WEIGHT:g} to {MAX_WEIGHT:g}",
            flag="::",
        )
    return weight


def parse_multi_prompt(text: str, negative_prompt: str = "") -> tuple[tuple[str, float], ...]:
    """The parts of a multi-prompt and their weights, in the order typed; ``()`` for a prompt without ``::``.

    ``negative_prompt`` (``--no``) counts as a part of weight -0.5 in the total, which must be above 0. Raises
    PromptError for an empty part, a malformed or out-of-range weight, too many parts or a total of 0 or less."""
    if MULTI_PROMPT not in text:
        return ()
    segments = text.split(MULTI_PROMPT)
    parts: list[tuple[str, float]] = []
    current = segments[0]
    for segment in segments[1:]:
        match = _WEIGHT_TOKEN.match(segment)
        weight = _weight(match.group(0)) if match else 1.0
        words = " ".join(current.split())
        if not words:
            raise PromptError(f"`::` needs words before it: write {MULTI_PROMPT_FORM}", flag="::")
        parts.append((words, weight))
        current = segment[match.end() :] if match else segment
    if current.strip():
        parts.append((" ".join(current.split()), 1.0))
    if len(parts) > MAX_PARTS:
        raise PromptError(
            f"this prompt has {len(parts)} parts; a prompt has at most {MAX_PARTS} parts separated by `::`", flag="::"
        )
    total = sum(weight for _words, weight in parts) + (NO_WEIGHT if negative_prompt else 0.0)
    if total <= 0:
        counted = f" (`--no` counts as {NO_WEIGHT:g})" if negative_prompt else ""
        raise PromptError(
            f"the weights of the prompt's parts add up to {total:g}{counted}; the total must be above 0: raise a "
            "positive weight or make a negative one smaller",
            flag="::",
        )
    return tuple(parts)


def _whole_number(value: str, flag: str, low: int, high: int, form: str) -> int:
    if not re.fullmatch(r"[+]?\d{1,6}", value):
        raise PromptError(f"`--{flag} {value}` is not valid: use {form}", flag=flag)
    number = int(value)
    if not low <= number <= high:
        raise PromptError(f"`--{flag} {value}` is out of range: use {form}", flag=flag)
    return number


def parse_chaos(value: str, flag: str, _limits: object) -> int:
    """``--chaos N``: a whole number from 0 to 100."""
    return _whole_number(value, flag, 0, MAX_CHAOS, f"--chaos N with N from 0 to {MAX_CHAOS}, for example --chaos 50")


def parse_stop(value: str, flag: str, _limits: object) -> int:
    """``--stop N``: a whole number from 10 to 100 (percent of the steps)."""
    form = f"--stop N with N from {MIN_STOP} to {FULL_STOP} (percent of the steps), for example --stop 50"
    return _whole_number(value, flag, MIN_STOP, FULL_STOP, form)


def parse_quality(value: str, flag: str, _limits: object) -> float:
    """``--q``: one of .25, .5, 1 and 2."""
    form = "--q .25, --q .5, --q 1 or --q 2 (times the steps)"
    if not re.fullmatch(r"\d{0,2}(?:\.\d{1,3})?", value):
        raise PromptError(f"`--{flag} {value}` is not valid: use {form}", flag=flag)
    quality = float(value)
    if quality not in QUALITIES:
        raise PromptError(f"`--{flag} {value}` is not one of the qualities: use {form}", flag=flag)
    return quality


def quality_steps(steps: int, quality: float) -> int:
    """``steps`` times ``--q``, rounded half up, at least 1 (``--q .25`` of 10 steps is 3)."""
    return max(1, math.floor(steps * quality + 0.5))
