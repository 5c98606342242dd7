"""The Discord side of installing the bot: the permissions it needs and why, its invite URL, and what to say when a
permission is missing.

:data:`NEEDED_PERMISSIONS` is the one table: the invite's ``permissions=`` bitfield (:func:`invite_permissions`),
the list an owner reads (:func:`permissions_text`), the refusal a member sees in a channel where the bot cannot
deliver (:func:`check_delivery_permissions`) and the log line of a post Discord refused for missing permissions
(:func:`describe_post_refusal`) are all derived from it.

What the bot does in a channel, and so what it needs there:

- Results are posted as interaction follow-ups while the interaction token lives (15 minutes), and as normal
  channel messages with the bot token after that (relax jobs, a long queue) or when a follow-up is refused. A
  channel message needs View Channel and Send Messages (Send Messages in Threads inside a thread), plus Embed Links
  for the result's embed and Attach Files for the grid.
- Read Message History is not asked for: the bot never reads, fetches or replies to channel messages; the only
  messages it edits or deletes are its own interaction messages, through the interaction token.
- No privileged intent: the bot works with slash commands and buttons and reads no message content or member list.

A request is refused, privately and before anything is charged, when the bot lacks any of them in the channel:
Send Messages too, although a fast job that finishes within the token's 15 minutes would arrive as a follow-up
without it. Whether a job finishes in time is not known when it is charged (the queue may be long, relax jobs wait,
a follow-up may be refused), and a paid result that can never be posted is worse than one line a moderator fixes
once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord

from bot.discord_surface.connection import NETWORK_ERRORS, describe
from bot.discord_surface.discord_token import TOKEN_REJECTED
from bot.errors import ImagineError
from config.settings import Settings

log = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = ("bot", "applications.commands")
"""OAuth2 scopes of the invite: the bot user, and the slash commands."""
SETTINGS_HINT = "Server Settings → Roles, or the channel's permissions"
"""Where a moderator grants a permission (said in every refusal)."""
INVITE_TIMEOUT_S = 30.0
"""How long ``python -m bot invite`` waits for Discord before it gives up."""
MAX_LISTED_SERVERS = 10
"""Servers named in the start-up line; the rest are counted."""

THREAD_TYPES = frozenset(
    {discord.ChannelType.public_thread, discord.ChannelType.private_thread, discord.ChannelType.news_thread}
)


@dataclass(frozen=True)
class NeededPermission:
    """One permission the bot asks for: its ``discord.Permissions`` flag, its name in Discord's UI, and why."""

    flag: str
    name: str
    why: str
    in_threads: bool | None = None
    """None: needed in every channel; True: only inside threads; False: only outside threads."""

    def applies(self, *, thread: bool) -> bool:
        """Whether the bot needs this permission in a channel that is (or is not) a thread."""
        return self.in_threads is None or self.in_threads == thread


NEEDED_PERMISSIONS: tuple[NeededPermission, ...] = (
    NeededPermission("view_channel", "View Channel", "to find the channel when it posts a result as a normal message"),
    NeededPermission(
        "send_messages",
        "Send Messages",
        "results are posted as normal messages after the 15-minute interaction window (relax jobs, a long queue) "
        "and when a follow-up is refused",
        in_threads=False,
    ),
    NeededPermission(
        "send_messages_in_threads",
        "Send Messages in Threads",
        "the same, when members use the bot inside a thread",
        in_threads=True,
    ),
    NeededPermission("attach_files", "Attach Files", "the result grid is an image attachment"),
    NeededPermission("embed_links", "Embed Links", "the result embed shows the seed, size, steps and model"),
)
"""Everything the bot needs in a channel to deliver results, in the order messages name them."""


class MissingChannelPermissionsError(ImagineError):
    """The bot cannot deliver results in the channel a request came from; the message names what to grant."""

    def __init__(self, channel_label: str, missing: Sequence[NeededPermission]) -> None:
        super().__init__(refusal_text(channel_label, missing))
        self.channel_label = channel_label
        self.missing = tuple(missing)


class InviteError(Exception):
    """``python -m bot invite`` could not build the URL; ``exit_code`` is 2 for a rejected token, 1 otherwise.
    ``unreachable`` is true when Discord could not be reached or did not answer (then the URL can be built offline)."""

    def __init__(self, message: str, *, exit_code: int, unreachable: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.unreachable = unreachable


# --- the table, turned into what each reader needs ----------------------------------------------------------------


def invite_permissions() -> discord.Permissions:
    """The permissions the invite asks for: every row of :data:`NEEDED_PERMISSIONS`."""
    return discord.Permissions(**{needed.flag: True for needed in NEEDED_PERMISSIONS})


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with both scopes and exactly :func:`invite_permissions`."""
    if application_id <= 0:
        raise ValueError(f"an application id is a positive snowflake, got {application_id}")
    return discord.utils.oauth_url(application_id, permissions=invite_permissions(), scopes=SCOPES)


def permissions_text() -> str:
    """One line per permission with why it is needed (for the README and ``python -m bot invite``)."""
    return "\n".join(f"- {needed.name}: {needed.why}" for needed in NEEDED_PERMISSIONS)


def join_names(names: Sequence[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def missing_permissions(granted: discord.Permissions, *, thread: bool) -> list[NeededPermission]:
    """The needed permissions that ``granted`` lacks in a channel that is (or is not) a thread, in table order."""
    return [
        needed for needed in NEEDED_PERMISSIONS if needed.applies(thread=thread) and not getattr(granted, needed.flag)
    ]


def refusal_text(channel_label: str, missing: Sequence[NeededPermission]) -> str:
    """What a member reads when the bot cannot deliver in ``channel_label``: what to grant, and where."""
    names = join_names([needed.name for needed in missing])
    return f"I can't post images in {channel_label}: a moderator can give me {names} there ({SETTINGS_HINT})"


def channel_label(channel: object, channel_id: int | None) -> str:
    """``#name`` when the channel's name is known, else ``channel <id>``."""
    name = getattr(channel, "name", None)
    if isinstance(name, str) and name:
        return "#" + " ".join(name.split())
    return f"channel {channel_id}" if channel_id is not None else "this channel"


def is_thread(channel: object) -> bool:
    """Whether a channel (a discord.py channel, thread or partial messageable) is a thread."""
    return getattr(channel, "type", None) in THREAD_TYPES


def check_delivery_permissions(interaction: discord.Interaction[Any]) -> None:
    """Refuse a request from a server channel where the bot cannot post results (``interaction.app_permissions``).

    Raises MissingChannelPermissionsError; outside a server there is nothing to check (guild-only commands and
    :meth:`~bot.application.service.ImagineService.prepare` refuse those).
    """
    if interaction.guild_id is None:
        return
    channel = interaction.channel
    missing = missing_permissions(interaction.app_permissions, thread=is_thread(channel))
    if missing:
        raise MissingChannelPermissionsError(channel_label(channel, interaction.channel_id), missing)


MISSING_PERMISSION_CODES = frozenset({50001, 50013})
"""Missing Access, Missing Permissions."""


def describe_post_refusal(error: discord.HTTPException, channel: object, channel_id: int | None) -> str:
    """The text of a refused channel post; for a permission refusal it names the channel and what the bot lacks
    there (from the bot's cached permissions in that channel)."""
    text = error.text or f"HTTP {error.status}"
    if error.code not in MISSING_PERMISSION_CODES and error.status != 403:
        return text
    label = channel_label(channel, channel_id)
    missing: list[NeededPermission] = []
    guild = getattr(channel, "guild", None)
    me = getattr(guild, "me", None)
    if me is not None and hasattr(channel, "permissions_for"):
        missing = missing_permissions(channel.permissions_for(me), thread=is_thread(channel))  # type: ignore[attr-defined]
    elif error.code == 50001:
        missing = [NEEDED_PERMISSIONS[0]]  # Missing Access: the bot cannot see the channel
    if not missing:
        return f"{text} in {label}"
    names = join_names([needed.name for needed in missing])
    return f"{text}: in {label} the bot lacks {names}; a moderator can give it {names} there ({SETTINGS_HINT})"


# --- start-up -----------------------------------------------------------------------------------------------------


def startup_report(
    bot_name: str,
    bot_id: int,
    servers: Sequence[tuple[str, int]],
    application_id: int | None,
    *,
    limit: int = MAX_LISTED_SERVERS,
) -> str:
    """The one line logged when the bot is ready: who it is and where it is, or how to invite it."""
    who = f"ready as {bot_name} (id {bot_id})"
    if not servers:
        if application_id is None:
            return f"{who}, in no server yet; invite it with the URL python -m bot invite prints"
        return f"{who}, in no server yet; invite it with {invite_url(application_id)}"
    named = ", ".join(f"{' '.join(name.split())} (id {server_id})" for name, server_id in servers[:limit])
    more = f" and {len(servers) - limit} more" if len(servers) > limit else ""
    count = f"{len(servers)} server{'s' if len(servers) != 1 else ''}"
    return f"{who} in {count}: {named}{more}"


def guild_sync_refused(guild_id: int, application_id: int | None) -> str:
    """What to do when Discord refuses to sync the slash commands to ``sync_guild_id`` (Missing Access): the bot is
    not in that server, or was added without the applications.commands scope."""
    invite = invite_url(application_id) if application_id else "the URL python -m bot invite prints"
    return (
        f"could not sync the slash commands to server {guild_id} (sync_guild_id): the bot is not in it, or was "
        f"added without the applications.commands scope; invite it with {invite} and restart the bot "
        "(or remove sync_guild_id to sync globally)"
    )


def log_startup_report(client: discord.Client) -> None:
    """Log :func:`startup_report` for a client that is ready."""
    user = client.user
    if user is None:
        return
    servers = sorted(((guild.name, guild.id) for guild in client.guilds), key=lambda item: item[1])
    log.info("%s", startup_report(str(user), user.id, servers, client.application_id))


# --- python -m bot invite -----------------------------------------------------------------------------------------


async def application_invite(client: discord.Client) -> str:
    """The invite URL of a logged-in client's application (its id from ``GET /oauth2/applications/@me``)."""
    info = await client.application_info()
    return invite_url(info.id)


async def invite_for_token(token: str, *, timeout_s: float = INVITE_TIMEOUT_S) -> str:
    """Log in over HTTP only (no gateway), read the application id and build the invite. Raises InviteError."""
    try:
        async with discord.Client(intents=discord.Intents.default()) as client:
            async with asyncio.timeout(timeout_s):
                await client.login(token)
                return await application_invite(client)
    except discord.LoginFailure:
        raise InviteError(TOKEN_REJECTED, exit_code=2) from None
    except TimeoutError:
        raise InviteError(
            f"Discord did not answer within {timeout_s:.0f} s; try again later", exit_code=1, unreachable=True
        ) from None
    except discord.HTTPException as error:
        raise InviteError(
            f"Discord refused the request ({error.status}: {error.text}); try again later",
            exit_code=1,
            unreachable=error.status >= 500,
        ) from None
    except NETWORK_ERRORS as error:
        raise InviteError(
            f"could not reach Discord ({describe(error)}); check this machine's network and try again",
            exit_code=1,
            unreachable=True,
        ) from None


def offline_note(error: InviteError, application_id: int) -> str:
    """Says that the link was built without Discord, from the application id in the token, and why."""
    reason = str(error).split(";", 1)[0]
    return (
        f"{reason}; this link was built offline from the token (application id {application_id}: a bot's user id is "
        "its application id). Discord has not checked the token yet: python -m bot run will."
    )


def print_invite(settings: Settings) -> int:
    """``python -m bot invite``: the URL on stdout, what it asks for on stderr. Exit 0 (also when Discord cannot be
    reached: the URL is then built offline from the token), 1 (Discord refused the request) or 2 (no token, one
    that is not a bot token's shape, or one Discord rejects)."""
    from bot.discord_surface.discord_token import (
        TOKEN_HELP,
        TOKEN_SHAPE_PROBLEM,
        token_user_id,
        with_misnamed_variables,
    )
    from bot.operations.exit_codes import EXIT_CONFIG, EXIT_OK

    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    if not token:
        print(with_misnamed_variables(TOKEN_HELP), file=sys.stderr)
        return EXIT_CONFIG
    application_id = token_user_id(token)
    if application_id is None:
        print(f"error: {TOKEN_SHAPE_PROBLEM}", file=sys.stderr)
        return EXIT_CONFIG
    logging.getLogger("discord").setLevel(logging.ERROR)  # the command reports its own errors, in one line
    try:
        url = asyncio.run(invite_for_token(token))
    except InviteError as error:
        if not error.unreachable:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_code
        url = invite_url(application_id)
        print(offline_note(error, application_id), file=sys.stderr)
    print(url)
    scopes = " and ".join(SCOPES)
    print(f"Open it in a browser and pick a server. It asks for the scopes {scopes} and:", file=sys.stderr)
    print(permissions_text(), file=sys.stderr)
    return EXIT_OK
