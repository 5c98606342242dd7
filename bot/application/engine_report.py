"""The engines as an owner or moderator reads them: one line per engine (where it runs, its state, the models it
holds, busy or idle, its restarts) and a headline over them all.

The engine pool (:meth:`~bot.running.engine_pool.EnginePool.status`) gives an
:class:`~bot.running.engine_pool.EngineStatus` per engine; ``ModeratorActions.engines`` hands them to a surface,
which shows them with these functions (``/admin stats``) or as its own fields (the web API). Pure functions: the
same statuses always read the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.running.engine_pool import EngineStatus

__all__ = ["EngineStatus", "engine_line", "engine_lines", "engines_headline"]

MORE = "… and {count} more"
"""The last line when the lines do not all fit (``count`` engines not shown)."""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _models(status: EngineStatus) -> str:
    """What the engine holds or is busy loading, by its state."""
    held = ", ".join(status.loaded_models) or status.model
    if status.state == "ready":
        return f"ready with {held}"
    if status.state == "starting":
        return f"starting, loading {status.model}"
    if status.state == "failing":
        return f"failing: cannot load {status.model}"
    return "down (not running)"


def engine_line(status: EngineStatus) -> str:
    """One engine in a line: ``engine 1 on cuda:1: ready with sd15, sdxl · busy · 2 restarts``."""
    activity = "busy" if status.busy else "idle"
    return f"{status.name} on {status.device}: {_models(status)} · {activity} · {_plural(status.restarts, 'restart')}"


def engines_headline(statuses: Sequence[EngineStatus]) -> str:
    """All engines in a few words: ``2 engines: 2 ready, 1 busy, 3 restarts`` (``no engine`` for none)."""
    if not statuses:
        return "no engine"
    ready = sum(1 for status in statuses if status.state == "ready")
    busy = sum(1 for status in statuses if status.busy)
    restarts = sum(status.restarts for status in statuses)
    return f"{_plural(len(statuses), 'engine')}: {ready} ready, {busy} busy, {_plural(restarts, 'restart')}"


def engine_lines(statuses: Sequence[EngineStatus], max_chars: int, *, prefix: str = "") -> list[str]:
    """:func:`engine_line` of each engine, each after ``prefix``, as many as fit in ``max_chars`` (newlines between
    them included); when some do not fit, the last line says how many more there are."""
    lines: list[str] = []
    used = 0
    for shown, status in enumerate(statuses):
        line = prefix + engine_line(status)
        rest = len(statuses) - shown - 1
        reserve = len(prefix + MORE.format(count=len(statuses))) + 1 if rest else 0
        if used + len(line) + reserve > max_chars:
            lines.append(prefix + MORE.format(count=len(statuses) - shown))
            return lines
        lines.append(line)
        used += len(line) + 1
    return lines
