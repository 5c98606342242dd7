"""Who asks the application core for something, and from where.

Every request names an :class:`Actor`: the member whose credits, tier, limits and bans apply, and the surface the
request came through. Moderation rules (blocklist, channel rules) belong to a Discord server, so a Discord actor
carries its server and channel; a Discord actor without a server (a direct message) is refused, because no server's
rules would apply. The console (the owner at a shell) is trusted and has no server. A web actor (an API key's
member) carries the server whose rules its key follows, and no channel.

A Discord actor also carries the facts its server gives about it (:class:`MemberRoles`), so the core itself
decides who may moderate (:func:`bot.application.permissions.may_moderate`), whatever the surface checked before.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.jobs import WEB_SOURCE, Origin
from bot.scheduling.ledger import CONSOLE_USER_ID


@dataclass(frozen=True)
class MemberRoles:
    """What a server says about a member: its permissions that make a moderator, and its roles."""

    manage_guild: bool = False
    administrator: bool = False
    is_owner: bool = False
    role_ids: tuple[int, ...] = ()
    role_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Actor:
    """A member acting through one surface. ``origin`` says where results go back to."""

    user_id: int
    origin: Origin
    roles: MemberRoles | None = None
    """For a Discord member: its server permissions and roles; None when the surface knows none."""

    @classmethod
    def console(cls) -> Actor:
        """The owner at a shell (``python -m bot generate``)."""
        return cls(CONSOLE_USER_ID, Origin(source="cli"))

    @classmethod
    def discord(
        cls,
        user_id: int,
        *,
        guild_id: int | None,
        channel_id: int | None,
        interaction_id: int | None = None,
        roles: MemberRoles | None = None,
        nsfw: bool = False,
    ) -> Actor:
        """A Discord member in a server channel (``guild_id`` None: a direct message, which is refused); ``nsfw``:
        the channel is marked age-restricted."""
        origin = Origin(
            source="discord", guild_id=guild_id, channel_id=channel_id, interaction_id=interaction_id, nsfw=nsfw
        )
        return cls(user_id, origin, roles)

    @classmethod
    def web(cls, user_id: int, *, guild_id: int, key_id: str, moderator: bool = False) -> Actor:
        """A member signed in to the web UI or an API with a key: ``guild_id`` is the server whose rules (blocklist)
        apply; the web has no channel, so channel rules do not. ``moderator`` (set on the key by the owner) makes
        it a moderator of that server."""
        origin = Origin(source=WEB_SOURCE, guild_id=guild_id, key_id=key_id)
        return cls(user_id, origin, MemberRoles(manage_guild=moderator))

    @property
    def is_web(self) -> bool:
        return self.origin.source == WEB_SOURCE

    @property
    def is_console(self) -> bool:
        return self.origin.source == "cli"

    @property
    def guild_id(self) -> int | None:
        return self.origin.guild_id

    @property
    def channel_id(self) -> int | None:
        return self.origin.channel_id
