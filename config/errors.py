"""The one error reading the settings raises, and the hints its messages carry (the nearest valid name)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(Exception):
    """A setting is missing or has a value of the wrong form; the message says which and what to write."""

    def one_line(self) -> str:
        """The message as one line (``invalid configuration: a; b``), for a log line or a health check."""
        return one_line(str(self))


def one_line(message: str) -> str:
    """``invalid configuration:`` and its ``- item`` lines as one line: ``invalid configuration: a; b``."""
    lines = [line.strip().removeprefix("- ") for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {'; '.join(lines[1:])}"
    return "; ".join(lines)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def top_level_hint(key: str) -> str:
    """For a top-level setting found inside a section: TOML puts every key after a ``[section]`` header into it."""
    return f" (top-level settings such as {key} must come before the first [section] in the file)"


def closest_key(name: str, keys: Iterable[str]) -> str | None:
    """The valid key closest to ``name``: by spelling, else the only key that has ``name`` as one of its words
    (``token`` -> ``discord_token``); None when nothing is close."""
    choices = list(keys)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return close[0]
    containing = [key for key in choices if name.lower() in key.split("_")]
    return containing[0] if len(containing) == 1 else None
