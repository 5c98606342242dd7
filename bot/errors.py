"""Typed errors. Each one carries a message written for the person who must act on it."""

from __future__ import annotations

from config.settings import ConfigError


class ImagineError(Exception):
    """Base of every error a member, moderator or owner may see. ``str(error)`` is the user-facing text."""


class PromptError(ImagineError):
    """The prompt or one of its flags is malformed; the message names the flag and its valid form."""

    def __init__(self, message: str, *, flag: str | None = None) -> None:
        super().__init__(message)
        self.flag = flag


class JobNotFoundError(ImagineError):
    """A job id that does not exist (or no longer exists)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class EngineError(ImagineError):
    """Something went wrong in the engine process."""


class EngineStartError(EngineError):
    """The engine could not load its model; the message says what is wrong with it."""


class EngineCrashedError(EngineError):
    """The engine process died while it held a job; the job can be retried."""


class RenderFailedError(EngineError):
    """The engine ran the job and reported that it failed (for example out of memory)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


__all__ = [
    "ConfigError",
    "EngineCrashedError",
    "EngineError",
    "EngineStartError",
    "ImagineError",
    "JobNotFoundError",
    "PromptError",
    "RenderFailedError",
]
