"""The heartbeat file and ``python -m bot health``: is the running bot alive, answered in well under a second.

The running bot writes ``<data_dir>/heartbeat.json`` every :data:`HEARTBEAT_EVERY_S` seconds (an APScheduler job
of :mod:`bot.running.maintenance`) with its worker's state: whether the worker loop runs, whether the engine is ready,
loading or failing (and why), how many jobs wait and run, and when the last one finished. ``health`` reads that
file and nothing else (no database, no engine, no torch, no discord.py), so Docker's ``HEALTHCHECK`` can run it
often: exit 0 when the heartbeat is fresh and the worker loop alive, 1 otherwise, with one line either way.

``health`` never exits 2: Docker reserves that code for itself.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.atomic_files import write_atomically

HEARTBEAT_NAME = "heartbeat.json"
HEARTBEAT_EVERY_S = 30.0
"""How often the running bot rewrites its heartbeat."""
STALE_AFTER_S = 3 * HEARTBEAT_EVERY_S
"""A heartbeat older than this means the bot stopped or is stuck (three beats missed)."""
HEALTHY = 0
UNHEALTHY = 1


class EngineState(StrEnum):
    """What the engine is doing, as the heartbeat reports it."""

    READY = "ready"
    """Its model is loaded; jobs render."""
    LOADING = "loading"
    """The process runs and loads its model; jobs wait."""
    FAILING = "failing"
    """It cannot start (the detail says why); the worker tries again later, jobs wait."""
    STOPPED = "stopped"
    """No engine process runs (before the first start, or between a crash and the restart)."""


@dataclass(frozen=True)
class Heartbeat:
    """One beat of the running bot. Times are Unix seconds."""

    written_at: float
    pid: int
    worker_alive: bool
    engine: EngineState
    engine_detail: str
    """The model (and device) when ready or loading; the reason when failing."""
    queued: int
    running: int
    last_finished_at: float | None
    """When the last job completed or failed; None when none has since the bot started."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Heartbeat:
        """Parse a heartbeat; raises ValueError naming what is wrong."""
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            last = data["last_finished_at"]
            beat = cls(
                written_at=float(data["written_at"]),
                pid=int(data["pid"]),
                worker_alive=_boolean(data["worker_alive"]),
                engine=EngineState(data["engine"]),
                engine_detail=str(data["engine_detail"]),
                queued=int(data["queued"]),
                running=int(data["running"]),
                last_finished_at=None if last is None else float(last),
            )
        except KeyError as error:
            raise ValueError(f"the field {error.args[0]!r} is missing") from None
        except (TypeError, ValueError) as error:
            raise ValueError(str(error)) from None
        return beat


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"worker_alive must be true or false, not {value!r}")
    return value


class HeartbeatError(Exception):
    """The heartbeat file is missing or unreadable; the message says which and what it means."""


def heartbeat_file(data_dir: Path) -> Path:
    """Where the bot keeps its heartbeat."""
    return data_dir / HEARTBEAT_NAME


def write_heartbeat(path: Path, beat: Heartbeat) -> None:
    """Replace the heartbeat file at once (a reader never sees half a file). Raises OSError."""
    write_atomically(path, beat.to_json().encode("utf-8"))


def remove_heartbeat(path: Path) -> None:
    """Forget an earlier run's heartbeat, so ``health`` does not take it for this run's (best effort)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def read_heartbeat(path: Path) -> Heartbeat:
    """The heartbeat in ``path``. Raises HeartbeatError when there is none or it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HeartbeatError(
            f"no heartbeat at {path}: the bot is not running, or has not reached Discord yet "
            f"(it writes one every {HEARTBEAT_EVERY_S:g} s once connected); see its log"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise HeartbeatError(f"the heartbeat {path} cannot be read ({reason})") from None
    try:
        return Heartbeat.from_json(text)
    except ValueError as error:
        raise HeartbeatError(
            f"{path} is not a heartbeat ({error}); the running bot rewrites it every {HEARTBEAT_EVERY_S:g} s"
        ) from None


def ago(seconds: float) -> str:
    """``12 s``, ``4 min``, ``3 h``, ``2 d``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def judge(beat: Heartbeat, now: float, *, stale_after_s: float = STALE_AFTER_S) -> tuple[bool, str]:
    """Healthy or not, and the one line that says so: fresh and the worker loop alive is healthy."""
    age = now - beat.written_at
    engine = f"engine {beat.engine.value}" + (f" ({beat.engine_detail})" if beat.engine_detail else "")
    if age > stale_after_s:
        return False, (
            f"unhealthy: the last heartbeat is {ago(age)} old (written every {HEARTBEAT_EVERY_S:g} s): "
            "the bot is stopped or stuck; see its log"
        )
    if not beat.worker_alive:
        return False, f"unhealthy: the worker loop has stopped ({engine}); see the bot's log and restart it"
    finished = (
        f"last job finished {ago(now - beat.last_finished_at)} ago"
        if beat.last_finished_at is not None
        else "no job finished yet"
    )
    return True, (
        f"healthy: worker running, {engine}, {beat.queued} queued, {beat.running} running, {finished} "
        f"(heartbeat {ago(age)} old)"
    )


def check_health(path: Path, *, now: float | None = None, stale_after_s: float = STALE_AFTER_S) -> tuple[int, str]:
    """Exit code (0 healthy, 1 not) and one line for the heartbeat in ``path``."""
    try:
        beat = read_heartbeat(path)
    except HeartbeatError as error:
        return UNHEALTHY, f"unhealthy: {error}"
    healthy, line = judge(beat, time.time() if now is None else now, stale_after_s=stale_after_s)
    return (HEALTHY if healthy else UNHEALTHY), line


def run_health(*, stale_after_s: float = STALE_AFTER_S) -> int:
    """``python -m bot health``: print one line, return 0 or 1 (never 2, which Docker reserves)."""
    from config.errors import ConfigError
    from config.settings import load_settings

    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"unhealthy: {error.one_line()}")
        return UNHEALTHY
    code, line = check_health(heartbeat_file(settings.data_dir), stale_after_s=stale_after_s)
    print(line)
    sys.stdout.flush()
    return code
