"""The prompt blocklist rule: does a prompt contain a blocked word or phrase?

Matching is on words, after undoing the usual tricks: case, accents and look-alike letters (NFKC), zero-width
characters, leetspeak digits (``n00d``), and letters spelled out one by one (``n.s.f.w``, ``n s f w``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def normalise_words(text: str) -> list[str]:
    """Lower-case ASCII-ish words with leetspeak undone and spelled-out letters joined."""
    text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text)).casefold()
    text = "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
    words = re.findall(r"[a-z0-9@$!]+", text.translate(_LEET))
    words = [word.translate(_LEET) for word in words]
    joined: list[str] = []
    letters: list[str] = []
    for word in words:
        if len(word) == 1:
            letters.append(word)
            continue
        if letters:
            joined.append("".join(letters))
            letters = []
        joined.append(word)
    if letters:
        joined.append("".join(letters))
    return joined


def find_blocked(prompt: str, blocked: Iterable[str]) -> str | None:
    """The first blocked entry the prompt contains (as whole words), or None."""
    words = normalise_words(prompt)
    squashed = " " + " ".join(words) + " "
    for entry in blocked:
        phrase = normalise_words(entry)
        if phrase and f" {' '.join(phrase)} " in squashed:
            return entry
    return None


def channel_allowed(rules: dict[int, bool], channel_id: int) -> bool:
    """Channel policy: a denied channel never; when any channel is allowed, only allowed ones; else all."""
    if rules.get(channel_id) is False:
        return False
    if any(rules.values()):
        return rules.get(channel_id) is True
    return True
