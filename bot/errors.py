"""Typed errors. Each one carries a message written for the person who must act on it."""

from __future__ import annotations

from config.errors import ConfigError


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


class SchedulerError(ImagineError):
    """The scheduler refused a job; the message says what the member can change."""


class InsufficientCreditsError(SchedulerError):
    """The member's balance does not cover the job."""

    def __init__(self, *, balance: int, cost: int, relax_offered: bool) -> None:
        message = f"this costs {cost} credits and your balance is {balance}."
        if relax_offered:
            message += " Use --relax to queue it for free (it runs when the GPU is less busy)."
        else:
            message += " Wait for your allowance to refill or ask a moderator for credits."
        super().__init__(message)
        self.balance = balance
        self.cost = cost
        self.relax_offered = relax_offered


class DuplicateJobError(SchedulerError):
    """The member pressed a button whose job of theirs is still queued or running."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"that is already on its way (job {job_id}); you were not charged again")
        self.job_id = job_id


class QueueLimitError(SchedulerError):
    """The member already has as many jobs waiting as their tier allows."""

    def __init__(self, *, queued: int, limit: int) -> None:
        super().__init__(f"you already have {queued} job(s) waiting and your limit is {limit}; wait for one to finish")
        self.queued = queued
        self.limit = limit


class BannedError(SchedulerError):
    """The member is banned from the bot."""

    def __init__(self) -> None:
        super().__init__("you are banned from creating images here; ask a moderator if you think this is a mistake")


class QueuePausedError(SchedulerError):
    """A moderator paused the queue for maintenance."""

    def __init__(self) -> None:
        super().__init__("the queue is paused for maintenance; your credits were not touched, try again later")


class LaneNotAllowedError(SchedulerError):
    """The member's tier may not use the lane they asked for."""

    def __init__(self, lane: str, tier: str) -> None:
        super().__init__(f"the {lane} lane is not available to the {tier} tier; use --fast instead")
        self.lane = lane
        self.tier = tier


class LedgerError(ImagineError):
    """A balance change that the ledger refuses (it would go negative, or the tier is unknown)."""


class NotModeratorError(ImagineError):
    """Someone without moderator rights asked for a moderator action."""

    def __init__(self) -> None:
        super().__init__(
            "only moderators can use this: you need the Manage Server permission or a moderator role of this server"
        )


__all__ = [
    "BannedError",
    "ConfigError",
    "DuplicateJobError",
    "EngineCrashedError",
    "EngineError",
    "EngineStartError",
    "ImagineError",
    "InsufficientCreditsError",
    "JobNotFoundError",
    "LaneNotAllowedError",
    "LedgerError",
    "NotModeratorError",
    "PromptError",
    "QueueLimitError",
    "QueuePausedError",
    "SchedulerError",
]
