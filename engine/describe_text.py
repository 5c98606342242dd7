"""From a captioning model's raw text to /describe's prompt suggestions: pure functions, no torch (the bot uses them
too).

A caption becomes a prompt that ``/imagine`` takes as it is: control and invisible characters go, and so does every
character the prompt parser reads as syntax (``--flags``, ``{a,b}`` permutations, ``::`` weights, ``<lora:…>`` tags,
``(word:1.2)`` emphasis), so a suggestion is plain words with light punctuation. It is cut on a word boundary to
:data:`MAX_SUGGESTION_CHARS`, and ends with Midjourney's ``--ar W:H`` for the described image's shape
(:func:`aspect_flag`). Suggestions that read the same once cleaned count once (:func:`suggestions_from`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from fractions import Fraction

SUGGESTIONS = 4
"""How many prompts /describe offers for one image."""
MAX_SUGGESTION_CHARS = 300
"""The longest suggestion text, before its ``--ar`` flag."""
MAX_ASPECT = Fraction(4)
"""The most extreme ratio ``--ar`` accepts (4:1 and 1:4): a wider image gets the widest ratio allowed."""
ASPECT_DENOMINATOR = 16
"""``--ar`` is the closest ratio whose smaller side is at most this (1920x1080 is 16:9, 1023x768 is 4:3)."""
AR_FLAG = " --ar "

_KEPT_PUNCTUATION = frozenset(",.'!?&-")
_FILLER_STARTS = ("there is ", "there are ", "this is ", "the image shows ", "this image shows ", "an image of ")
"""Openings captioning models like that add nothing to a prompt."""
_ARTIFACTS = re.compile(r"\b(?:arafed|araffe|arafe|araf)\b", re.IGNORECASE)
"""Nonsense words BLIP is known to produce at the start of captions."""
_DASHES = re.compile(r"-{2,}")
_LOOSE_DASH = re.compile(r"(?:(?<=\s)|^)-+|-+(?=\s|$)")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.!?])")
_REPEATED_PUNCTUATION = re.compile(r"([,.!?])(?:[\s,.!?]*[,.!?])+")


def _plain_character(char: str) -> str:
    """The character as a suggestion keeps it: letters, digits and a little punctuation; anything else is a space."""
    if char.isalnum() or char in _KEPT_PUNCTUATION:
        return char
    return " "


def clean_caption(text: str, limit: int = MAX_SUGGESTION_CHARS) -> str:
    """A caption as plain prompt text: no control, invisible or syntax characters, no loose dashes (so never a
    ``--flag``), single spaces, no filler opening, at most ``limit`` characters cut on a word boundary; ``""`` when
    nothing is left.

    >>> clean_caption("arafed woman --ar 9:1 {red,blue} <lora:x:1>\\x07 sitting::2 on a couch ")
    'woman ar 9 1 red,blue lora x 1 sitting 2 on a couch'
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"} else char for char in text)
    text = "".join(_plain_character(char) for char in text)
    text = _ARTIFACTS.sub(" ", text)
    text = _DASHES.sub("-", text)
    text = _LOOSE_DASH.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    text = _REPEATED_PUNCTUATION.sub(r"\1", text)
    lowered = text.lower()
    for filler in _FILLER_STARTS:
        if lowered.startswith(filler):
            text = text[len(filler) :]
            break
    if len(text) > limit:
        cut = text[: limit + 1]
        text = cut[: cut.rfind(" ")] if " " in cut else cut[:limit]
    return text.strip(" ,.&-'")


def aspect_ratio(width: int, height: int) -> tuple[int, int]:
    """The ``--ar`` ratio of an image: the closest simple ratio (smaller side at most :data:`ASPECT_DENOMINATOR`),
    clamped to what ``--ar`` accepts (1:4 to 4:1).

    >>> aspect_ratio(1920, 1080), aspect_ratio(96, 64), aspect_ratio(1000, 100), aspect_ratio(512, 512)
    ((16, 9), (3, 2), (4, 1), (1, 1))
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"an image has a positive width and height, got {width}x{height}")
    ratio = min(max(Fraction(width, height), 1 / MAX_ASPECT), MAX_ASPECT)
    if ratio >= 1:
        simple = ratio.limit_denominator(ASPECT_DENOMINATOR)
        return simple.numerator, simple.denominator
    simple = (1 / ratio).limit_denominator(ASPECT_DENOMINATOR)
    return simple.denominator, simple.numerator


def aspect_flag(width: int, height: int) -> str:
    """``--ar W:H`` for an image of ``width`` x ``height`` (see :func:`aspect_ratio`)."""
    ratio_w, ratio_h = aspect_ratio(width, height)
    divisor = math.gcd(ratio_w, ratio_h)
    return f"--ar {ratio_w // divisor}:{ratio_h // divisor}"


def suggestions_from(
    captions: Iterable[str], width: int, height: int, *, count: int = SUGGESTIONS, limit: int = MAX_SUGGESTION_CHARS
) -> tuple[str, ...]:
    """Up to ``count`` prompts from ``captions`` in order: each cleaned (:func:`clean_caption`), the empty ones and
    those that read the same as an earlier one (ignoring case) left out, each ending with the image's ``--ar``."""
    flag = aspect_flag(width, height)
    chosen: dict[str, str] = {}
    for caption in captions:
        text = clean_caption(caption, limit)
        if text and text.casefold() not in chosen:
            chosen[text.casefold()] = f"{text} {flag}"
            if len(chosen) == count:
                break
    return tuple(chosen.values())


def suggestion_text(suggestion: str) -> str:
    """A suggestion without its ``--ar`` flag (the caption alone, as A1111's interrogate answers it)."""
    head, found, tail = suggestion.rpartition(AR_FLAG)
    return head if found and re.fullmatch(r"\d{1,3}:\d{1,3}", tail) else suggestion
