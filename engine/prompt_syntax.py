"""Pure prompt syntax: A1111 weighting translated to compel's, and ``<lora:name:weight>`` tags. No torch here."""

from __future__ import annotations

import re

LORA_TAG = re.compile(r"<lora:([^:<>]+)(?::([^:<>]*))?>")
A1111_UP = 1.1
_WEIGHT_SUFFIX = re.compile(r":\s*(-?\d+(?:\.\d+)?|-?\.\d+)\s*$")


def parse_loras(prompt: str) -> tuple[str, tuple[tuple[str, float], ...]]:
    """Strip ``<lora:name:weight>`` tags; returns the clean prompt and (name, weight) pairs (weight 1 by default).

    Raises ValueError when a weight is not a number.
    """
    found: list[tuple[str, float]] = []

    def take(match: re.Match[str]) -> str:
        name, weight = match.group(1).strip(), (match.group(2) or "").strip()
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(
                f"LoRA weight {weight!r} in <lora:{name}:{weight}> is not a number; write e.g. 0.8"
            ) from None
        found.append((name, value))
        return ""

    clean = LORA_TAG.sub(take, prompt)
    return " ".join(clean.split()), tuple(found)


def has_weighting(prompt: str) -> bool:
    """True when the prompt uses A1111 emphasis: unescaped ``(`` or ``[``."""
    return bool(re.search(r"(?<!\\)[\(\[]", prompt))


def a1111_to_compel(prompt: str) -> str:
    """Translate A1111 emphasis into compel syntax.

    ``(word:1.3)`` -> ``(word)1.3``, ``(word)`` -> ``(word)1.1``, ``((word))`` -> ``((word)1.1)1.1``,
    ``[word]`` -> ``(word)0.909``; ``\\(`` stays a literal parenthesis. Unbalanced brackets are kept literally.
    """
    out: list[list[str]] = [[]]
    opens: list[str] = []
    index = 0
    while index < len(prompt):
        char = prompt[index]
        if char == "\\" and index + 1 < len(prompt) and prompt[index + 1] in "()[]":
            out[-1].append(prompt[index : index + 2])
            index += 2
            continue
        if char in "([":
            opens.append(char)
            out.append([])
        elif char in ")]" and opens and {"(": ")", "[": "]"}[opens[-1]] == char:
            opener = opens.pop()
            inner = "".join(out.pop())
            weight = A1111_UP if opener == "(" else 1 / A1111_UP
            match = _WEIGHT_SUFFIX.search(inner) if opener == "(" else None
            if match:
                weight = float(match.group(1))
                inner = inner[: match.start()]
            out[-1].append(f"({inner.strip()}){weight:.3g}")
        elif char in ")]":
            out[-1].append("\\" + char)
        else:
            out[-1].append(char)
        index += 1
    while opens:  # unbalanced openers are literal text
        inner = "".join(out.pop())
        out[-1].append("\\" + opens.pop() + inner)
    return "".join(out[0])
