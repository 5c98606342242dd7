"""The image safety check as the core sees it: whether a job's images are checked (a pure function of the
``[safety]`` settings and where the job came from), what the check decided, and how that is kept on the job.

- ``[safety] enabled = false``: nothing is checked; the job's safety stays ``unchecked``.
- A Discord channel marked age-restricted (NSFW) skips the check: ``skipped:nsfw-channel``.
- Anything else is checked by the engine (:mod:`engine.safety`): Discord's other channels, the web UI and APIs, and
  the command line (neither has an age-restricted channel). The result is ``passed`` or ``flagged:<reason>``, with
  the flagged images' places in the grid.

A flagged job is posted behind a spoiler with the reason (``action = "spoiler"``; the web marks its flagged images),
or withheld (``action = "withhold"``): it fails with the reason, is refunded through the scheduler's one refund
path, and its files are deleted. The prompt blocklist applies before any of this, as for every job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.safety_settings import SafetySettings
from engine.protocol import RenderTask, TaskDone

if TYPE_CHECKING:
    from bot.jobs import Job, Origin

DISCORD_SOURCE = "discord"
NSFW_CHANNEL = "nsfw-channel"
"""Why a job was not checked: its Discord channel is age-restricted."""
UNRENDERED_KINDS = frozenset({"describe"})
"""Job kinds that render no image (/describe shows the member's own upload with its prompts): never checked."""


class SafetyDecision(StrEnum):
    """Whether a job's images are checked, decided before it renders (:func:`decide`)."""

    CHECK = "check"
    """The engine checks every image the job renders."""
    OFF = "off"
    """The check is off on this server."""
    NSFW_CHANNEL = "nsfw-channel"
    """The job came from a Discord channel marked age-restricted."""


class SafetyState(StrEnum):
    """What the check says about a finished job (the first part of ``jobs.safety``)."""

    UNCHECKED = "unchecked"
    """The check is off (also every job from before it existed)."""
    PASSED = "passed"
    """Checked; no image was flagged."""
    FLAGGED = "flagged"
    """Checked; at least one image was flagged (``flagged:<reason>``)."""
    SKIPPED = "skipped"
    """Not checked, for a reason (``skipped:nsfw-channel``)."""


@dataclass(frozen=True)
class JobSafety:
    """A job's safety verdict: its state, the reason (flagged) or why it was skipped, and the 0-based places of the
    flagged images in its grid. Stored as ``jobs.safety`` (``passed``, ``flagged:<reason>``, ...) and
    ``jobs.safety_flagged`` (the places, comma-separated)."""

    state: SafetyState = SafetyState.UNCHECKED
    detail: str = ""
    images: tuple[int, ...] = ()

    @property
    def flagged(self) -> bool:
        return self.state is SafetyState.FLAGGED

    @property
    def reason(self) -> str:
        """Why the images were flagged (or why the check was skipped); empty otherwise."""
        return self.detail

    def images_named(self, image_count: int) -> str:
        """The flagged images as members count them: ``image 2``, ``images 1 and 3``; ``the image`` when the job
        has a single one (``image_count`` 1)."""
        if image_count == 1:
            return "the image"
        places = [str(index + 1) for index in self.images]
        if len(places) == 1:
            return f"image {places[0]}"
        return f"images {', '.join(places[:-1])} and {places[-1]}"

    def is_flagged(self, index: int) -> bool:
        """Whether image ``index`` (0-based) of the job was flagged."""
        return self.flagged and index in self.images

    @property
    def text(self) -> str:
        """The ``jobs.safety`` column: ``unchecked``, ``passed``, ``flagged:<reason>`` or ``skipped:<why>``."""
        return f"{self.state.value}:{self.detail}" if self.detail else self.state.value

    @property
    def images_text(self) -> str:
        """The ``jobs.safety_flagged`` column: the flagged images' places, e.g. ``0,2``."""
        return ",".join(str(index) for index in self.images)

    @classmethod
    def from_columns(cls, text: str | None, images_text: str | None = "") -> JobSafety:
        """Read :attr:`text` and :attr:`images_text` back (None, as a row from before the check, is ``unchecked``)."""
        if not text:
            return cls()
        state, _, detail = text.partition(":")
        images = tuple(int(part) for part in (images_text or "").split(",") if part.strip())
        return cls(SafetyState(state), detail, images)

    @classmethod
    def from_row(cls, row: Any) -> JobSafety:
        """The verdict kept on a ``jobs`` row (``unchecked`` for a row read without its safety columns)."""
        try:
            text, images = row["safety"], row["safety_flagged"]
        except (IndexError, KeyError):
            return cls()
        return cls.from_columns(text, images)


PASSED = JobSafety(SafetyState.PASSED)
UNCHECKED = JobSafety()


class SafetyVerdictError(Exception):
    """The engine did not check a job it was asked to check (a verdict per image is missing)."""


def decide(settings: SafetySettings, origin: Origin, kind: str = "") -> SafetyDecision:
    """Whether a job of ``kind`` from ``origin`` is checked. Only a Discord channel can be age-restricted: the web and
    the command line are checked whenever the check is on. A kind that renders nothing is never checked."""
    if not settings.enabled or str(kind) in UNRENDERED_KINDS:
        return SafetyDecision.OFF
    if origin.source == DISCORD_SOURCE and origin.nsfw:
        return SafetyDecision.NSFW_CHANNEL
    return SafetyDecision.CHECK


def with_safety_check(task: RenderTask, settings: SafetySettings, origin: Origin) -> RenderTask:
    """``task``, asking the engine for a check when :func:`decide` says so."""
    if decide(settings, origin, task.kind) is SafetyDecision.CHECK:
        return dataclasses.replace(task, safety_check=True)
    return task


def verdict(decision: SafetyDecision, flags: Sequence[str], image_count: int) -> JobSafety:
    """The job's verdict from the engine's per-image ``flags`` (``""`` for an image that passed, else the reason).
    Raises SafetyVerdictError when a checked job came back without a verdict for each image."""
    if decision is SafetyDecision.OFF:
        return UNCHECKED
    if decision is SafetyDecision.NSFW_CHANNEL:
        return JobSafety(SafetyState.SKIPPED, NSFW_CHANNEL)
    if image_count == 0:  # nothing was rendered (a job that answers with text): nothing to check
        return UNCHECKED
    if len(flags) != image_count:
        raise SafetyVerdictError(
            f"the engine returned {image_count} image(s) without the safety check they needed; nothing was posted"
        )
    flagged = tuple(index for index, reason in enumerate(flags) if reason)
    if not flagged:
        return PASSED
    reasons = "; ".join(dict.fromkeys(flags[index] for index in flagged))
    return JobSafety(SafetyState.FLAGGED, reasons, flagged)


def job_verdict(settings: SafetySettings, job: Job, done: TaskDone) -> JobSafety:
    """The verdict of a finished job (see :func:`verdict`). Raises SafetyVerdictError."""
    return verdict(decide(settings, job.origin, job.kind), done.safety, len(done.paths))


def withholds(settings: SafetySettings, safety: JobSafety) -> bool:
    """Whether a job with ``safety`` is withheld (failed, refunded, its files deleted) rather than posted."""
    return safety.flagged and settings.action == "withhold"


def withheld_message(safety: JobSafety, image_count: int) -> str:
    """Why a withheld job failed, for the member."""
    verb = "were" if image_count != 1 and len(safety.images) > 1 else "was"
    return (
        f"withheld by the image safety check: {safety.images_named(image_count)} {verb} flagged ({safety.reason}), "
        "so nothing was posted"
    )


def record_safety(db: sqlite3.Connection, job_id: int, safety: JobSafety) -> None:
    """Keep a job's verdict on its row (inside a store write transaction)."""
    db.execute("UPDATE jobs SET safety = ?, safety_flagged = ? WHERE id = ?", (safety.text, safety.images_text, job_id))


def delete_job_files(done: TaskDone) -> None:
    """Delete the files the engine wrote for a withheld job (its images, its grid and a compact copy of it), and
    their folder once empty. Files already gone are fine."""
    files = [Path(path) for path in (*done.paths, done.grid_path) if path]
    if done.grid_path:
        files.append(Path(done.grid_path).with_suffix(".jpg"))
    for path in files:
        path.unlink(missing_ok=True)
    for folder in {path.parent for path in files}:
        with contextlib.suppress(OSError):
            folder.rmdir()
