"""The pure rules of telemetry: why a job failed and what a refusal is called (fixed label sets), and a
fixed-bucket histogram. No I/O; :mod:`bot.application.telemetry` keeps the counts."""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass

from bot.errors import ImagineError

FAILURE_REASONS = (
    "engine_start",
    "engine_crash",
    "timeout",
    "out_of_memory",
    "model_load",
    "bad_input",
    "storage",
    "other",
)
"""Every value :func:`failure_reason` returns."""

_FAILURE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("engine_start", ("the engine could not start",)),
    ("engine_crash", ("engine crashed", "the engine was killed", "interrupted by a restart")),
    ("timeout", ("took longer than", "stopped reporting progress")),
    ("out_of_memory", ("out of memory", "does not fit in gpu memory", "of gpu memory for its weights")),
    ("model_load", ("is not downloaded", "checkpoint file")),
    ("bad_input", ("is outside", "does not exist", "no longer kept", "cannot identify image", "must be")),
    ("storage", ("could not be saved", "no space left")),
)


def failure_reason(message: str) -> str:
    """The reason label of a failed job's message, one of :data:`FAILURE_REASONS` ("other" when none fits).

    The first rule whose phrase the message contains wins, so "the engine could not start: model ... does not fit
    in GPU memory" is an engine start failure, not a render that ran out of memory."""
    lowered = message.lower()
    for reason, phrases in _FAILURE_RULES:
        if any(phrase in lowered for phrase in phrases):
            return reason
    return "other"


def refusal_code(error: ImagineError) -> str:
    """The machine code of a refused request: the error's class name in snake case without ``Error``
    (InsufficientCreditsError → ``insufficient_credits``); a plain :class:`ImagineError` is ``refused``."""
    name = type(error).__name__
    if type(error) is ImagineError:
        return "refused"
    stem = name.removesuffix("Error") or name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", stem).lower()


@dataclass(frozen=True)
class Histogram:
    """Observations counted in fixed buckets, as Prometheus keeps them: ``counts[i]`` holds the values in
    ``(bounds[i-1], bounds[i]]`` and the last one those above every bound. Immutable: :meth:`observe` returns the
    histogram with one more value."""

    bounds: tuple[float, ...]
    """Upper bounds of the buckets, increasing and finite (the +Inf bucket is implied)."""
    counts: tuple[int, ...] = ()
    """Values per bucket (not cumulative), one more than ``bounds``; empty means all zero."""
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.bounds or any(not math.isfinite(bound) for bound in self.bounds):
            raise ValueError(f"histogram bounds must be finite numbers, got {self.bounds!r}")
        if any(later <= earlier for earlier, later in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError(f"histogram bounds must increase, got {self.bounds!r}")
        if not self.counts:
            object.__setattr__(self, "counts", (0,) * (len(self.bounds) + 1))
        if len(self.counts) != len(self.bounds) + 1:
            raise ValueError(f"a histogram with {len(self.bounds)} bounds needs {len(self.bounds) + 1} counts")

    def observe(self, value: float) -> Histogram:
        """This histogram with ``value`` counted (a value equal to a bound falls in that bound's bucket)."""
        index = bisect.bisect_left(self.bounds, value)
        counts = list(self.counts)
        counts[index] += 1
        return Histogram(self.bounds, tuple(counts), self.sum + value, self.count + 1)

    def cumulative(self) -> tuple[tuple[float, int], ...]:
        """(upper bound, values at or below it) per bucket, ending with (inf, count): Prometheus's ``le`` buckets."""
        running = 0
        buckets: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return tuple(buckets)
