"""The Midjourney-style prompt parser: ``a red fox --ar 3:2 --seed 7 --no blur, text``.

A pure function: text in, a :class:`ParsedPrompt` out, or a :class:`PromptError` that names the flag and shows
its valid form. Flags follow the prompt text; ``—`` (an em dash, what phones make of ``--``) counts as ``--``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from bot.errors import PromptError
from bot.requests.control_flags import parse_control_weight, parse_controlnet_name
from bot.requests.image_prompts import parse_image_weight
from bot.requests.multi_prompt import parse_chaos, parse_multi_prompt, parse_quality, parse_stop
from engine.protocol import Lane

MAX_SEED = 2**32 - 1
MAX_ASPECT_SIDE = 64
MAX_ASPECT_RATIO = 4.0
MAX_CFG = 30.0

_FLAG = re.compile(r"^(?:--|—|–)([a-zA-Z][a-zA-Z0-9_-]*)$")
# Zero-width and bidirectional control characters: invisible, and used to smuggle words past filters.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class ParsedPrompt:
    """What a member asked for. ``None`` means "use the model's default"."""

    text: str
    negative_prompt: str = ""
    aspect: tuple[int, int] = (1, 1)
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None
    model: str | None = None
    repeat: int = 1
    tile: bool = False
    lane: Lane | None = None
    flags: tuple[str, ...] = field(default=())
    control_weight: float | None = None
    """``--cw``: how strongly a control image steers (0 to 2); None: not asked."""
    controlnet: str | None = None
    """``--controlnet NAME``: the ControlNet a control image goes through; None: the registry's choice."""
    weighted_prompts: tuple[tuple[str, float], ...] = ()
    """A multi-prompt's parts and weights (``a cat:: a dog::2``, see :mod:`bot.requests.multi_prompt`); () without
    ``::``."""
    chaos: int = 0
    stop: int = 100
    quality: float | None = None
    """``--q``: the steps' multiplier; None: not asked."""
    image_weight: float | None = None
    """``--iw``: how strongly the image prompts steer (0 to 2); None: not asked."""


@dataclass(frozen=True)
class PromptLimits:
    """What this server allows; names are checked only when the known ones are given."""

    max_chars: int = 1500
    max_steps: int = 60
    max_repeat: int = 4
    models: Collection[str] | None = None
    samplers: Collection[str] | None = None


@dataclass(frozen=True)
class _Flag:
    name: str
    form: str
    parse: Callable[[str, str, PromptLimits], Any]
    field: str
    greedy: bool = False
    takes_value: bool = True


def _int_in(value: str, flag: str, form: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[+]?\d{1,12}", value):
        raise PromptError(f"`--{flag} {value}` is not valid: use {form}", flag=flag)
    number = int(value)
    if not low <= number <= high:
        raise PromptError(f"`--{flag} {value}` is out of range: use {form}", flag=flag)
    return number


def _parse_seed(value: str, flag: str, limits: PromptLimits) -> int:
    return _int_in(value, flag, f"--seed N with N a whole number from 0 to {MAX_SEED}", 0, MAX_SEED)


def _parse_steps(value: str, flag: str, limits: PromptLimits) -> int:
    return _int_in(value, flag, f"--steps N with N from 1 to {limits.max_steps}", 1, limits.max_steps)


def _parse_cfg(value: str, flag: str, limits: PromptLimits) -> float:
    form = f"--cfg X with X a number from 0 to {MAX_CFG:g}, for example --cfg 7"
    if not re.fullmatch(r"[+]?(\d{1,3}(\.\d{0,3})?|\.\d{1,3})", value):
        raise PromptError(f"`--{flag} {value}` is not valid: use {form}", flag=flag)
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= MAX_CFG):
        raise PromptError(f"`--{flag} {value}` is out of range: use {form}", flag=flag)
    return number


def _parse_aspect(value: str, flag: str, limits: PromptLimits) -> tuple[int, int]:
    form = (
        f"--ar W:H with whole numbers from 1 to {MAX_ASPECT_SIDE} and a ratio between 1:4 and 4:1, for example --ar 3:2"
    )
    match = re.fullmatch(r"(\d{1,3}):(\d{1,3})", value)
    if match is None:
        raise PromptError(f"`--{flag} {value}` is not valid: use {form}", flag=flag)
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_ASPECT_SIDE and 1 <= height <= MAX_ASPECT_SIDE):
        raise PromptError(f"`--{flag} {value}` is out of range: use {form}", flag=flag)
    ratio = width / height
    if not 1 / MAX_ASPECT_RATIO <= ratio <= MAX_ASPECT_RATIO:
        raise PromptError(f"`--{flag} {value}` is too extreme: use {form}", flag=flag)
    divisor = math.gcd(width, height)
    return width // divisor, height // divisor


def _parse_negative(value: str, flag: str, limits: PromptLimits) -> str:
    words = ", ".join(part.strip() for part in value.split(",") if part.strip())
    if not words:
        raise PromptError("`--no` needs words after it, for example --no blur, text", flag=flag)
    return words


def _parse_repeat(value: str, flag: str, limits: PromptLimits) -> int:
    return _int_in(value, flag, f"--repeat N with N from 1 to {limits.max_repeat}", 1, limits.max_repeat)


def _parse_name(kind: str, known: Callable[[PromptLimits], Collection[str] | None]) -> Callable[..., str]:
    def parse(value: str, flag: str, limits: PromptLimits) -> str:
        name = value.strip().lower()
        names = known(limits)
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name) or (names is not None and name not in names):
            choices = f": one of {', '.join(sorted(names))}" if names is not None else ""
            raise PromptError(
                f"`--{flag} {value}` is not a {kind} on this server; use --{flag} NAME{choices}", flag=flag
            )
        return name

    return parse


def _switch(value: str) -> Callable[..., Any]:
    return lambda argument, flag, limits: value


_FLAGS: dict[str, _Flag] = {
    spec.name: spec
    for spec in (
        _Flag("ar", "--ar W:H", _parse_aspect, "aspect"),
        _Flag("seed", "--seed N", _parse_seed, "seed"),
        _Flag("no", "--no words", _parse_negative, "negative_prompt", greedy=True),
        _Flag("steps", "--steps N", _parse_steps, "steps"),
        _Flag("cfg", "--cfg X", _parse_cfg, "cfg"),
        _Flag("sampler", "--sampler NAME", _parse_name("sampler", lambda limits: limits.samplers), "sampler"),
        _Flag("model", "--model NAME", _parse_name("model", lambda limits: limits.models), "model"),
        _Flag("repeat", "--repeat N", _parse_repeat, "repeat"),
        _Flag("tile", "--tile", _switch(True), "tile", takes_value=False),
        _Flag("fast", "--fast", _switch(Lane.FAST), "lane", takes_value=False),
        _Flag("relax", "--relax", _switch(Lane.RELAX), "lane", takes_value=False),
        _Flag("turbo", "--turbo", _switch(Lane.TURBO), "lane", takes_value=False),
        _Flag("cw", "--cw X", parse_control_weight, "control_weight"),
        _Flag("controlnet", "--controlnet NAME", parse_controlnet_name, "controlnet"),
        _Flag("chaos", "--chaos N", parse_chaos, "chaos"),
        _Flag("stop", "--stop N", parse_stop, "stop"),
        _Flag("q", "--q .25|.5|1|2", parse_quality, "quality"),
        _Flag("iw", "--iw X", parse_image_weight, "image_weight"),
    )
}
_ALIASES = {"aspect": "ar", "negative": "no", "r": "repeat"}
_ALIASES.update({"c": "chaos", "quality": "q"})


def parse_flag(flag: str, value: str, limits: PromptLimits) -> tuple[str, Any]:
    """One flag's value checked by the rule it has in a prompt: the field of :class:`ParsedPrompt` it sets and the
    parsed value. Raises PromptError with the flag's own message."""
    spec = _FLAGS[flag]
    return spec.field, spec.parse(value, flag, limits)


def known_flags() -> tuple[str, ...]:
    """The flag forms, for help texts."""
    return tuple(spec.form for spec in _FLAGS.values())


def clean_text(text: str) -> str:
    """Drop invisible and control characters and collapse runs of whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    text = "".join(" " if unicodedata.category(char) in {"Cc", "Zl", "Zp"} else char for char in text)
    return " ".join(text.split())


def parse_prompt(raw: str, limits: PromptLimits | None = None) -> ParsedPrompt:
    """Parse a member's prompt. Raises PromptError naming the problem and what to write instead."""
    limits = limits or PromptLimits()
    max_chars = limits.max_chars
    text = clean_text(raw)
    if len(text) > max_chars:
        raise PromptError(
            f"the prompt is {len(text)} characters long; the limit is {max_chars}. Shorten it and try again."
        )
    tokens = text.split(" ") if text else []
    words: list[str] = []
    index = 0
    while index < len(tokens) and _FLAG.match(tokens[index]) is None:
        words.append(tokens[index])
        index += 1
    values: dict[str, Any] = {}
    seen: list[str] = []
    while index < len(tokens):
        match = _FLAG.match(tokens[index])
        if match is None:
            previous = seen[-1] if seen else ""
            raise PromptError(
                f"unexpected text `{tokens[index]}` after `--{previous}`: put the prompt before the flags",
                flag=previous or None,
            )
        name = match.group(1).lower()
        name = _ALIASES.get(name, name)
        spec = _FLAGS.get(name)
        if spec is None:
            raise PromptError(f"unknown flag `--{match.group(1)}`. Known flags: {', '.join(known_flags())}", flag=name)
        if name in seen:
            raise PromptError(f"`--{name}` is given twice; give it once", flag=name)
        if spec.field in values:
            raise PromptError(f"`--{name}` conflicts with an earlier flag; give one lane flag", flag=name)
        seen.append(name)
        index += 1
        if not spec.takes_value:
            values[spec.field] = spec.parse("", name, limits)
            continue
        start = index
        while index < len(tokens) and _FLAG.match(tokens[index]) is None:
            index += 1
            if not spec.greedy:
                break
        argument = " ".join(tokens[start:index])
        if not argument:
            raise PromptError(f"`--{name}` needs a value: use {spec.form}", flag=name)
        values[spec.field] = spec.parse(argument, name, limits)
    prompt_text = " ".join(words).strip()
    if not prompt_text:
        raise PromptError("the prompt is empty: describe the image before any flags, e.g. `a red fox --ar 3:2`")
    weighted = parse_multi_prompt(prompt_text, values.get("negative_prompt", ""))
    return ParsedPrompt(text=prompt_text, flags=tuple(seen), weighted_prompts=weighted, **values)
