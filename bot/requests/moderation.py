"""Moderation state in the store: the audit trail, the prompt blocklist and channel rules."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiosqlite

from bot.actors import Actor
from bot.errors import ImagineError
from bot.requests.blocklist import channel_allowed, find_blocked, normalise_words
from bot.storage.store import Store

MAX_BLOCKLIST_ENTRIES = 500
MAX_PHRASE_CHARS = 100


class BlockedPromptError(ImagineError):
    """The prompt contains a word this server blocks."""

    def __init__(self, entry: str) -> None:
        super().__init__(f"your prompt contains the blocked word `{entry}`; this server does not allow it")
        self.entry = entry


class ChannelNotAllowedError(ImagineError):
    """The bot is not used in this channel; the message names where it can be used."""


class ServerOnlyError(ImagineError):
    """A request from outside a server (a direct message): no server's rules would apply, so it is refused."""

    def __init__(self) -> None:
        super().__init__("imaginebot works inside servers only: use /imagine in a channel of a server where the bot is")


async def record_audit(
    db: aiosqlite.Connection,
    *,
    actor_id: int,
    action: str,
    target: str | None = None,
    reason: str = "",
    guild_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Write one audit row inside the caller's transaction, so the action and its record commit together."""
    await db.execute(
        "INSERT INTO audit (at, guild_id, actor_id, action, target, reason, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (time.time(), guild_id, actor_id, action, target, reason, json.dumps(dict(details or {}), sort_keys=True)),
    )


class Moderation:
    """Blocklist, channel rules and the audit trail of one database."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Read on every /imagine, changed only by /admin in this process: cached, dropped on each change.
        self._blocked: dict[int, list[str]] = {}
        self._rules: dict[int, dict[int, bool]] = {}

    async def audit(self, **entry: Any) -> None:
        """Record an admin action done elsewhere (credits, tiers, bans, queue control); fields of record_audit."""
        async with self.store.transaction() as db:
            await record_audit(db, **entry)

    async def block(self, guild_id: int, phrases: list[str], *, actor_id: int, reason: str = "") -> list[str]:
        """Add phrases (comma separated words or phrases); returns the ones newly added."""
        cleaned = [" ".join(normalise_words(phrase)) for phrase in phrases]
        cleaned = [phrase[:MAX_PHRASE_CHARS] for phrase in cleaned if phrase]
        if not cleaned:
            raise ImagineError("give at least one word to block, e.g. `gore, blood`")
        added: list[str] = []
        async with self.store.transaction() as db:
            count = (
                await (await db.execute("SELECT COUNT(*) FROM blocklist WHERE guild_id = ?", (guild_id,))).fetchone()
            )[0]
            if count + len(cleaned) > MAX_BLOCKLIST_ENTRIES:
                raise ImagineError(f"the blocklist holds at most {MAX_BLOCKLIST_ENTRIES} entries; remove some first")
            for phrase in dict.fromkeys(cleaned):
                cursor = await db.execute(
                    "INSERT INTO blocklist (guild_id, phrase, added_by, added_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (guild_id, phrase, actor_id, time.time()),
                )
                if cursor.rowcount:
                    added.append(phrase)
            await record_audit(
                db, actor_id=actor_id, action="blocklist.add", target=", ".join(added), reason=reason, guild_id=guild_id
            )
        self._blocked.pop(guild_id, None)
        return added

    async def unblock(self, guild_id: int, phrases: list[str], *, actor_id: int, reason: str = "") -> list[str]:
        cleaned = [" ".join(normalise_words(phrase)) for phrase in phrases]
        removed: list[str] = []
        async with self.store.transaction() as db:
            for phrase in dict.fromkeys(p for p in cleaned if p):
                cursor = await db.execute("DELETE FROM blocklist WHERE guild_id = ? AND phrase = ?", (guild_id, phrase))
                if cursor.rowcount:
                    removed.append(phrase)
            await record_audit(
                db,
                actor_id=actor_id,
                action="blocklist.remove",
                target=", ".join(removed),
                reason=reason,
                guild_id=guild_id,
            )
        self._blocked.pop(guild_id, None)
        return removed

    async def blocked(self, guild_id: int) -> list[str]:
        cached = self._blocked.get(guild_id)
        if cached is None:
            rows = await self.store.fetch_all(
                "SELECT phrase FROM blocklist WHERE guild_id = ? ORDER BY phrase", (guild_id,)
            )
            cached = self._blocked[guild_id] = [row[0] for row in rows]
        return list(cached)

    async def check_prompts(self, actor: Actor, prompts: Iterable[str]) -> None:
        """Raise BlockedPromptError if any prompt that will be rendered contains a blocked entry of the actor's
        server. The console is trusted; a Discord actor without a server is refused (ServerOnlyError)."""
        guild_id = _rules_guild(actor)
        if guild_id is None:
            return
        blocked = await self.blocked(guild_id)
        if not blocked:
            return
        for prompt in prompts:
            entry = find_blocked(prompt, blocked)
            if entry is not None:
                raise BlockedPromptError(entry)

    async def set_channel(
        self, guild_id: int, channel_id: int, *, allowed: bool, actor_id: int, reason: str = ""
    ) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO channel_rules (guild_id, channel_id, allowed, set_by, set_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, channel_id) DO UPDATE SET allowed = excluded.allowed,"
                " set_by = excluded.set_by, set_at = excluded.set_at",
                (guild_id, channel_id, int(allowed), actor_id, time.time()),
            )
            await record_audit(
                db,
                actor_id=actor_id,
                action="channels.allow" if allowed else "channels.deny",
                target=str(channel_id),
                reason=reason,
                guild_id=guild_id,
            )
        self._rules.pop(guild_id, None)

    async def channel_rules(self, guild_id: int) -> dict[int, bool]:
        cached = self._rules.get(guild_id)
        if cached is None:
            rows = await self.store.fetch_all(
                "SELECT channel_id, allowed FROM channel_rules WHERE guild_id = ?", (guild_id,)
            )
            cached = self._rules[guild_id] = {int(row[0]): bool(row[1]) for row in rows}
        return dict(cached)

    async def check_channel(self, actor: Actor) -> None:
        """Raise ChannelNotAllowedError, naming the allowed channels, when the bot is not used where the actor is
        (ServerOnlyError outside a server). The console is trusted; channel rules do not apply to the web."""
        guild_id = _rules_guild(actor)
        if guild_id is None or actor.is_web:  # the web is not a channel: only the server's other rules apply
            return
        channel_id = actor.channel_id
        rules = await self.channel_rules(guild_id)
        if channel_id is not None and channel_allowed(rules, channel_id):
            return
        allowed = [f"<#{channel}>" for channel, ok in sorted(rules.items()) if ok]
        where = f"use it in {', '.join(allowed)}" if allowed else "ask a moderator where it can be used"
        raise ChannelNotAllowedError(f"the image bot is not used in this channel; {where}")


def _rules_guild(actor: Actor) -> int | None:
    """The server whose rules apply to ``actor``; None for the console. Raises ServerOnlyError for anyone else
    without a server (fail closed: a surface that names no server gets no way around the rules)."""
    if actor.is_console:
        return None
    if actor.guild_id is None:
        raise ServerOnlyError()
    return actor.guild_id
