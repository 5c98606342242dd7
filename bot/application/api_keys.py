"""API keys: how a member signs in to the web UI and the APIs, and the local web users the owner makes.

A key reads ``ib_<key id>_<secret>``: the key id is public (lists, logs), the secret is 32 random bytes. Only the
SHA-256 of the whole key is stored (the secret has 256 bits of entropy, so a slow hash adds nothing), and a
presented key is compared with :func:`hmac.compare_digest`. A key acts as its member: the same balance, tier, lanes,
limits, bans and moderation; ``guild_id`` names the server whose rules (blocklist) apply to its requests, and
``moderator`` (set by the owner only) lets it use the moderator endpoints for that server.

Authentication is on every request, so identities are cached for :data:`CACHE_S`; a revoke in this process drops
the cache entry at once, one made by another process (the owner's shell beside a running bot) within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from bot.actors import Actor
from bot.errors import ImagineError
from bot.storage.store import Store

KEY_PREFIX = "ib"
KEY_ID_CHARS = 12
KEY_PATTERN = re.compile(r"^ib_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
CACHE_S = 10.0
"""How long an identity is trusted without reading the database again."""
LAST_USED_EVERY_S = 60.0
"""``last_used_at`` is written at most this often per key."""
MAX_LABEL_CHARS = 100
MAX_KEYS_PER_MEMBER = 20
LOCAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
DISCORD_CREATOR = "discord"


class ApiKeyError(ImagineError):
    """A key cannot be made or changed as asked; the message says what to do instead."""


@dataclass(frozen=True)
class ApiKeyIdentity:
    """Who a valid key acts as."""

    key_id: str
    user_id: int
    guild_id: int
    moderator: bool = False

    def actor(self) -> Actor:
        """The web actor of this key (see :meth:`bot.actors.Actor.web`)."""
        return Actor.web(self.user_id, guild_id=self.guild_id, key_id=self.key_id, moderator=self.moderator)


@dataclass(frozen=True)
class IssuedKey:
    """A new key: ``secret`` is the whole key text, shown once and never stored."""

    identity: ApiKeyIdentity
    secret: str
    label: str


@dataclass(frozen=True)
class ApiKeyRecord:
    """One stored key, as the owner sees it (never the secret)."""

    key_id: str
    user_id: int
    guild_id: int
    label: str
    moderator: bool
    created_at: float
    created_by: str
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class LocalUser:
    """A web user the owner made without Discord (a negative id)."""

    user_id: int
    name: str
    created_at: float


def key_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def new_key_text() -> tuple[str, str]:
    """A fresh key id and the whole key text."""
    key_id = secrets.token_hex(KEY_ID_CHARS // 2)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(text: str) -> str | None:
    """The key id of a well-formed key text; None for anything else."""
    match = KEY_PATTERN.match(text.strip())
    return match.group(1) if match else None


def clean_label(label: str) -> str:
    text = " ".join(label.split())
    if len(text) > MAX_LABEL_CHARS:
        raise ApiKeyError(f"a key's label has at most {MAX_LABEL_CHARS} characters")
    return text


@dataclass
class _Cached:
    digest: bytes
    identity: ApiKeyIdentity
    read_at: float
    used_written_at: float


class ApiKeys:
    """The keys of one database. Reach it as ``ImagineService.keys``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, _Cached] = {}

    async def authenticate(self, presented: str) -> ApiKeyIdentity | None:
        """The identity of a valid, unrevoked key; None for anything else (same answer whatever was wrong)."""
        key_id = key_id_of(presented)
        digest = key_hash(presented.strip())
        if key_id is None:
            hmac.compare_digest(digest, digest)  # the same work as a real comparison
            return None
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is None or now - cached.read_at > CACHE_S:
            cached = await self._read(key_id, now)
            if cached is None:
                return None
        if not hmac.compare_digest(cached.digest, digest):
            return None
        if now - cached.used_written_at > LAST_USED_EVERY_S:
            cached.used_written_at = now
            stamp = time.time()
            # One hop to the writer's thread, not three (BEGIN, UPDATE, COMMIT): the first request of each key holds
            # the write lock that much shorter when many members' requests arrive at once (python -m bench.api).
            await self._store.write(
                lambda db: db.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (stamp, key_id))
            )
        return cached.identity

    async def _read(self, key_id: str, now: float) -> _Cached | None:
        row = await self._store.fetch_one(
            "SELECT user_id, guild_id, secret_hash, moderator FROM api_keys WHERE key_id = ? AND revoked_at IS NULL",
            (key_id,),
        )
        if row is None:
            self._cache.pop(key_id, None)
            return None
        identity = ApiKeyIdentity(key_id, int(row[0]), int(row[1]), bool(row[3]))
        previous = self._cache.get(key_id)
        cached = _Cached(bytes(row[2]), identity, now, previous.used_written_at if previous else 0.0)
        self._cache[key_id] = cached
        return cached

    async def issue(
        self,
        user_id: int,
        *,
        guild_id: int,
        created_by: str,
        label: str = "",
        moderator: bool = False,
        replace_own: bool = False,
    ) -> IssuedKey:
        """Make a key for ``user_id``. ``replace_own`` revokes the member's earlier keys made the same way
        (``/apikey`` rotates). Raises ApiKeyError when the member holds too many keys."""
        label = clean_label(label)
        key_id, text = new_key_text()
        now = time.time()
        async with self._store.transaction() as db:
            if replace_own:
                cursor = await db.execute(
                    "SELECT key_id FROM api_keys WHERE user_id = ? AND created_by = ? AND revoked_at IS NULL",
                    (user_id, created_by),
                )
                replaced = [row[0] for row in await cursor.fetchall()]
                await db.execute(
                    "UPDATE api_keys SET revoked_at = ?, revoked_by = ? "
                    "WHERE user_id = ? AND created_by = ? AND revoked_at IS NULL",
                    (now, created_by, user_id, created_by),
                )
                for old in replaced:
                    self._cache.pop(old, None)
            active = (
                await (
                    await db.execute(
                        "SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND revoked_at IS NULL", (user_id,)
                    )
                ).fetchone()
            )[0]
            if active >= MAX_KEYS_PER_MEMBER:
                raise ApiKeyError(
                    f"member {user_id} already holds {active} keys; revoke some first (python -m bot apikey list)"
                )
            await db.execute(
                "INSERT INTO api_keys (key_id, user_id, guild_id, secret_hash, label, moderator, created_at,"
                " created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, user_id, guild_id, key_hash(text), label, int(moderator), now, created_by),
            )
        return IssuedKey(ApiKeyIdentity(key_id, user_id, guild_id, moderator), text, label)

    async def rotate_own(self, actor: Actor) -> IssuedKey:
        """``/apikey``: a new key for a Discord member in a server, for that server's rules, revoking the key
        ``/apikey`` gave them before (keys the owner made stay)."""
        if actor.origin.source != "discord" or actor.guild_id is None:
            raise ApiKeyError("API keys are made with /apikey in a server, or by the owner (python -m bot apikey)")
        return await self.issue(
            actor.user_id, guild_id=actor.guild_id, created_by=DISCORD_CREATOR, label="/apikey", replace_own=True
        )

    async def records(
        self, user_id: int | None = None, *, include_revoked: bool = False, key_id: str | None = None
    ) -> list[ApiKeyRecord]:
        """Keys, newest first: all members' or one's (or the one ``key_id``); revoked ones only when asked."""
        where: list[str] = []
        params: list[object] = []
        for column, value in (("user_id", user_id), ("key_id", key_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if not include_revoked:
            where.append("revoked_at IS NULL")
        sql = (
            "SELECT key_id, user_id, guild_id, label, moderator, created_at, created_by, last_used_at, revoked_at"
            " FROM api_keys" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY created_at DESC"
        )
        rows = await self._store.fetch_all(sql, params)
        return [
            ApiKeyRecord(
                str(row[0]), int(row[1]), int(row[2]), str(row[3]), bool(row[4]), row[5], str(row[6]), row[7], row[8]
            )
            for row in rows
        ]

    async def revoke(self, key_id: str, *, by: str) -> ApiKeyRecord:
        """Revoke a key at once (in this process; within :data:`CACHE_S` in others). Raises ApiKeyError for an
        unknown or already revoked key."""
        async with self._store.transaction() as db:
            cursor = await db.execute(
                "UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE key_id = ? AND revoked_at IS NULL",
                (time.time(), by, key_id),
            )
            changed = cursor.rowcount
        self._cache.pop(key_id, None)
        if not changed:
            raise ApiKeyError(f"there is no active key {key_id!r}; list them with: python -m bot apikey list")
        [record] = await self.records(include_revoked=True, key_id=key_id)
        return record

    async def create_local_user(self, name: str) -> LocalUser:
        """A web user without Discord (the owner's shell). Raises ApiKeyError for a bad or taken name."""
        if not LOCAL_NAME.match(name):
            raise ApiKeyError(
                f"{name!r} is not a user name: use 1-32 letters, digits, '.', '_' or '-', starting with a letter/digit"
            )
        async with self._store.transaction() as db:
            taken = await (await db.execute("SELECT user_id FROM local_users WHERE name = ?", (name,))).fetchone()
            if taken is not None:
                raise ApiKeyError(f"there is already a local user named {name!r} (id {taken[0]})")
            lowest = (await (await db.execute("SELECT MIN(user_id) FROM local_users")).fetchone())[0]
            user_id = min(int(lowest or 0), 0) - 1
            now = time.time()
            await db.execute(
                "INSERT INTO local_users (user_id, name, created_at) VALUES (?, ?, ?)", (user_id, name, now)
            )
        return LocalUser(user_id, name, now)

    async def local_user(self, name: str) -> LocalUser | None:
        row = await self._store.fetch_one("SELECT user_id, name, created_at FROM local_users WHERE name = ?", (name,))
        return LocalUser(int(row[0]), str(row[1]), float(row[2])) if row else None

    async def local_users(self) -> list[LocalUser]:
        rows = await self._store.fetch_all("SELECT user_id, name, created_at FROM local_users ORDER BY user_id DESC")
        return [LocalUser(int(row[0]), str(row[1]), float(row[2])) for row in rows]
