"""When an engine that is starting has taken too long: the start timeout counts every phase but a download that
makes progress; a download that makes none for a while has stalled. Pure rules, and the words for each phase.

The engine says what it does on its way to ``EngineReady`` (:class:`engine.protocol.EngineStarting`: importing,
downloading with its progress every few seconds, loading). A multi-GB first download on a slow line can take an
hour; it must not be killed by ``engine_start_timeout_s`` while bytes keep arriving, and it must not hang forever
when they stop.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.protocol import (
    STARTING_COMPILING,
    STARTING_DOWNLOADING,
    STARTING_IMPORTING,
    STARTING_LOADING,
    EngineStarting,
)

DOWNLOAD_STALL_S = 300.0
"""A download with no new byte for this long (or the start timeout, when shorter) has stalled."""
PROGRESS_LOG_EVERY_S = 30.0
"""A download's progress is logged at most this often (phase changes always)."""


@dataclass(frozen=True)
class StartVerdict:
    """``expired`` with the line to log, or how long until the next deadline (``wake_in_s``)."""

    expired: bool
    wake_in_s: float
    reason: str = ""


class StartWatch:
    """The clock of one wait for an engine start. Feed it what the engine said (``observe``) at each wake-up.

    Time passes on the phase the engine was last known to be in: a ``downloading`` phase stops the start clock
    and runs a stall clock, reset by every report with more bytes than any before; any other phase (and the time
    before the first report) runs the start clock.
    """

    def __init__(self, model: str, start_timeout_s: float, stall_s: float, now: float) -> None:
        self.model = model
        self.start_timeout_s = start_timeout_s
        self.stall_s = stall_s
        self.counted_s = 0.0
        """Seconds spent in phases the start timeout counts."""
        self.status: EngineStarting | None = None
        self.most_bytes = -1
        self.progress_at = now
        self._now = now

    @property
    def downloading(self) -> bool:
        return self.status is not None and self.status.phase == STARTING_DOWNLOADING

    def observe(self, now: float, status: EngineStarting | None) -> None:
        """Time moved to ``now``; ``status`` is the engine's latest report (None before the first)."""
        if not self.downloading:
            self.counted_s += max(0.0, now - self._now)
        self._now = max(self._now, now)
        if status is None:
            return
        entering = status.phase == STARTING_DOWNLOADING and not self.downloading
        if entering or (status.phase == STARTING_DOWNLOADING and status.done_bytes > self.most_bytes):
            self.progress_at = self._now
        if status.phase == STARTING_DOWNLOADING:
            self.most_bytes = max(self.most_bytes, status.done_bytes)
        self.status = status

    def verdict(self) -> StartVerdict:
        """Whether the start has taken too long at the last observed moment."""
        if self.downloading:
            assert self.status is not None
            idle = self._now - self.progress_at
            if idle >= self.stall_s:
                return StartVerdict(
                    True,
                    0.0,
                    f"the download of model {self.model!r} stalled: no progress for {idle:.0f} s "
                    f"({download_progress(self.status)}); check the network and the disk, then restart the bot "
                    f"(the download resumes), or fetch it with `python -m bot models pull {self.model}`",
                )
            return StartVerdict(False, self.stall_s - idle)
        if self.counted_s >= self.start_timeout_s:
            doing = f" (it was {phase_line(self.status)})" if self.status is not None else ""
            return StartVerdict(
                True,
                0.0,
                f"the engine did not load model {self.model!r} within {self.start_timeout_s:g} s{doing}; "
                "raise engine_start_timeout_s or check the model",
            )
        return StartVerdict(False, self.start_timeout_s - self.counted_s)


def download_progress(status: EngineStarting) -> str:
    """``3 of 14 files, 1.2 of 2.6 GiB (46%)``; the bytes alone when the total is unknown. It says 100% only once
    every file is in."""
    files = f"{status.done_files} of {status.total_files} files, " if status.total_files else ""
    if status.total_bytes <= 0:
        return f"{files}{_size(status.done_bytes, status.done_bytes)}"
    share = min(status.done_bytes / status.total_bytes, 1.0)
    percent = min(int(share * 100), 99 if status.done_files < status.total_files else 100)
    done = _size(status.done_bytes, status.total_bytes).split()[0]
    return f"{files}{done} of {_size(status.total_bytes, status.total_bytes)} ({percent}%)"


def phase_line(status: EngineStarting) -> str:
    """The engine's phase in words, for the log: ``importing torch and diffusers``, ``downloading model sd15
    (org/repo, fp16 variant, …): 3 of 14 files, …``, ``loading model sd15 (fp16 weights on cuda)``, ``compiling
    model sd15 (warm-up: 4 images at 624×416 and 512×512, 2 steps)``."""
    detail = f" ({status.detail})" if status.detail else ""
    if status.phase == STARTING_IMPORTING:
        return f"importing {status.detail or 'its libraries'}"
    if status.phase == STARTING_DOWNLOADING:
        return f"downloading model {status.model}{detail}: {download_progress(status)}"
    if status.phase == STARTING_LOADING:
        return f"loading model {status.model}{detail}"
    if status.phase == STARTING_COMPILING:
        return f"compiling model {status.model}{detail}"
    return f"{status.phase} {status.model}{detail}".strip()


def should_log(previous: EngineStarting | None, current: EngineStarting, since_last_log_s: float) -> bool:
    """One line per phase change; a download's progress at most every :data:`PROGRESS_LOG_EVERY_S`."""
    if previous is None or (previous.phase, previous.model) != (current.phase, current.model):
        return True
    return current.phase == STARTING_DOWNLOADING and since_last_log_s >= PROGRESS_LOG_EVERY_S


def _size(size: int, scale: int) -> str:
    """``size`` in GiB when ``scale`` is at least 1 GiB, else in MiB."""
    if scale >= 2**30:
        return f"{size / 2**30:.1f} GiB"
    return f"{size / 2**20:.0f} MiB"
