"""What moderators (and the owner at the console) can do: the blocklist, channel rules, credits, tiers, bans, any
job, pausing the queue, and the reports (the day's stats, the engines).

Part of the application core: every method takes the :class:`~bot.actors.Actor` asking, checks that it may
moderate (:func:`bot.application.permissions.may_moderate`: whatever a surface checked before, the core decides), does
the change, writes the audit row, and returns plain data. Reach it as ``ImagineService.admin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bot.actors import Actor
from bot.application.engine_report import EngineStatus
from bot.application.permissions import in_server_of, may_moderate
from bot.errors import ImagineError, JobNotFoundError, NotModeratorError
from bot.jobs import Job
from bot.scheduling.ledger import CONSOLE_ACTOR, Entry, Member
from bot.scheduling.reports import QueueSummary, Stats, queue_summary, stats

if TYPE_CHECKING:
    from bot.application.service import ImagineService

CreditChange = Literal["give", "take", "set"]
QUEUE_LISTING = 20
"""Queued jobs an admin queue listing shows (oldest first)."""


@dataclass(frozen=True)
class Account:
    """A member's account as a moderator sees it (None: not seen yet) and its most recent ledger rows."""

    member: Member | None
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class QueueListing:
    """The queue as a moderator sees it: the summary (every server: the GPU is shared), and the jobs of the
    moderator's server that render now and the oldest that wait."""

    summary: QueueSummary
    running: tuple[Job, ...]
    queued: tuple[Job, ...]


def _ledger_actor(actor: Actor) -> str:
    """How the ledger names a moderator's change."""
    return CONSOLE_ACTOR if actor.is_console else f"discord:{actor.user_id}"


class ModeratorActions:
    """Moderator and owner actions; each refuses an actor that may not moderate (NotModeratorError)."""

    def __init__(self, service: ImagineService) -> None:
        self._service = service

    def may_moderate(self, actor: Actor) -> bool:
        return may_moderate(actor, self._service.settings.moderator_roles)

    def _require(self, actor: Actor) -> None:
        if not self.may_moderate(actor):
            raise NotModeratorError()

    def _server_of(self, actor: Actor) -> int:
        self._require(actor)
        if actor.guild_id is None:
            raise ImagineError("blocklists and channel rules belong to a Discord server; use the /admin commands there")
        return actor.guild_id

    async def _audit(self, actor: Actor, action: str, target: str | None, reason: str, **details: Any) -> None:
        await self._service.moderation.audit(
            actor_id=actor.user_id,
            action=action,
            target=target,
            reason=reason,
            guild_id=actor.guild_id,
            details=details,
        )

    # --- the server's rules ----------------------------------------------------------------------------------

    async def block(self, actor: Actor, phrases: Sequence[str], reason: str = "") -> list[str]:
        """Add phrases to the server's blocklist; returns those that were not blocked yet."""
        guild_id = self._server_of(actor)
        return await self._service.moderation.block(guild_id, list(phrases), actor_id=actor.user_id, reason=reason)

    async def unblock(self, actor: Actor, phrases: Sequence[str], reason: str = "") -> list[str]:
        """Remove phrases from the server's blocklist; returns those that were blocked."""
        guild_id = self._server_of(actor)
        return await self._service.moderation.unblock(guild_id, list(phrases), actor_id=actor.user_id, reason=reason)

    async def blocked(self, actor: Actor) -> list[str]:
        """The server's blocklist."""
        return await self._service.moderation.blocked(self._server_of(actor))

    async def set_channel(self, actor: Actor, channel_id: int, *, allowed: bool, reason: str = "") -> None:
        """Allow the bot in a channel of the server (then only allowed channels work), or keep it out of one."""
        guild_id = self._server_of(actor)
        await self._service.moderation.set_channel(
            guild_id, channel_id, allowed=allowed, actor_id=actor.user_id, reason=reason
        )

    # --- members ---------------------------------------------------------------------------------------------

    async def account(self, actor: Actor, user_id: int, limit: int = 20) -> Account:
        """A member's balance, tier and ban with the newest ``limit`` ledger rows. Read-only: creates nothing."""
        self._require(actor)
        ledger = self._service.ledger
        found = await ledger.find_member(user_id)
        entries = await ledger.entries(user_id, limit) if found is not None else []
        return Account(found, tuple(entries))

    async def change_credits(self, actor: Actor, change: CreditChange, user_id: int, amount: int, reason: str) -> int:
        """Give, take or set a member's credits; returns the new balance. Raises LedgerError when refused."""
        self._require(actor)
        ledger = self._service.ledger
        apply = {"give": ledger.grant, "take": ledger.take, "set": ledger.set_balance}[change]
        balance = await apply(user_id, amount, actor=_ledger_actor(actor), reason=reason)
        await self._audit(actor, f"credits.{change}", str(user_id), reason, amount=amount, balance=balance)
        return balance

    async def set_tier(self, actor: Actor, user_id: int, tier: str, reason: str = "") -> Member:
        """Move a member to a tier; returns the account. Raises LedgerError for an unknown tier."""
        self._require(actor)
        account = await self._service.ledger.set_tier(user_id, tier, actor=_ledger_actor(actor))
        await self._audit(actor, "tier.set", str(user_id), reason, tier=tier)
        return account

    async def set_banned(self, actor: Actor, user_id: int, banned: bool, reason: str) -> None:
        """Ban a member (their queued jobs stay until cancelled) or lift the ban."""
        self._require(actor)
        if banned and user_id == actor.user_id:
            raise ImagineError("you cannot ban yourself")
        await self._service.ledger.set_banned(user_id, banned, actor=_ledger_actor(actor))
        await self._audit(actor, "ban" if banned else "unban", str(user_id), reason)

    # --- the queue ---------------------------------------------------------------------------------------------

    async def queue(self, actor: Actor, limit: int = QUEUE_LISTING) -> QueueListing:
        """The queue's summary, and the running and oldest ``limit`` queued jobs of the moderator's server."""
        self._require(actor)
        service = self._service
        summary = await queue_summary(service.store, paused=service.scheduler.paused)
        rows = await service.store.fetch_all(
            "SELECT * FROM jobs WHERE status = 'queued' AND (? OR json_extract(origin, '$.guild_id') = ?)"
            " ORDER BY id LIMIT ?",
            (actor.is_console, actor.guild_id, limit),
        )
        running = tuple(job for job in summary.running if in_server_of(job, actor))
        return QueueListing(summary, running, tuple(Job.from_row(row) for row in rows))

    async def cancel(self, actor: Actor, job_id: int, reason: str = "") -> Job:
        """Cancel an unfinished job of the moderator's server (refunded); another server's is "not found"."""
        self._require(actor)
        if not in_server_of(await self._service.scheduler.get(job_id), actor):
            raise JobNotFoundError(job_id)
        cancelled = await self._service.cancel(job_id, actor=f"moderator {actor.user_id}")
        await self._audit(actor, "job.cancel", str(job_id), reason, owner=cancelled.user_id)
        return cancelled

    async def pause(self, actor: Actor, reason: str = "") -> None:
        """Start no more jobs; queued jobs are kept."""
        self._require(actor)
        await self._service.scheduler.pause(_ledger_actor(actor))
        await self._audit(actor, "queue.pause", None, reason)

    async def resume(self, actor: Actor, reason: str = "") -> None:
        """Start jobs again (the worker is woken at once)."""
        self._require(actor)
        service = self._service
        await service.scheduler.resume(_ledger_actor(actor))
        service.worker.wake()
        await self._audit(actor, "queue.resume", None, reason)

    async def stats(self, actor: Actor) -> Stats:
        """Jobs, members and credits of the last 24 hours."""
        self._require(actor)
        return await stats(self._service.store)

    async def engines(self, actor: Actor) -> tuple[EngineStatus, ...]:
        """Every engine now: its name and device, state, the models it holds, busy or idle, its restarts."""
        self._require(actor)
        return tuple(self._service.engines.status())
