"""``python -m bot apikey create|list|revoke|users``: the owner makes, lists and revokes API keys, and local web users.

A key is printed once, on stdout, and never again: only its hash is stored, and it is never logged. A key acts as
its member (a Discord user id, or a local web user the owner made without Discord, whose id is negative) with the
rules of one server (``--guild``, by default ``[web] rules_guild_id``); ``--moderator`` lets it moderate that server.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import time
from typing import TYPE_CHECKING, Any

from bot.operations.exit_codes import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from bot.application.api_keys import ApiKeyRecord, ApiKeys, IssuedKey, LocalUser
    from bot.application.service import ImagineService
    from config.settings import Settings

log = logging.getLogger(__name__)

CREATED_BY = "console"
"""Who made a key with this command, as stored (``/apikey`` stores ``discord``)."""
MAX_ARGUMENT_SHOWN = 24
"""A longer unrecognised key id is not echoed: it may be a whole key pasted by mistake."""
LIST_HINT = "list them with: python -m bot apikey list"


def add_apikey_commands(commands: Any) -> None:
    """``apikey create|list|revoke|users`` under ``python -m bot``."""
    from bot.operations.cli import member_id  # cli imports this module; by now it is loaded

    apikey = commands.add_parser("apikey", help="make, list or revoke API keys of the web UI and APIs")
    actions = apikey.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="make a key for a member (printed once) or, with --local NAME, for a web user without Discord"
    )
    create.add_argument("user_id", type=member_id, nargs="?", metavar="USER_ID", help="the member's Discord user id")
    create.add_argument(
        "--local", metavar="NAME", help="a local web user (made if there is none of that name) instead of USER_ID"
    )
    create.add_argument(
        "--guild",
        type=server_id,
        metavar="G",
        help="the Discord server whose rules (blocklist) the key follows (default: [web] rules_guild_id)",
    )
    create.add_argument("--label", default="", metavar="TEXT", help="a note to tell keys apart (e.g. 'laptop')")
    create.add_argument("--moderator", action="store_true", help="the key may moderate its server's jobs")
    listing = actions.add_parser("list", help="keys: id, member, server, label, use (never a secret)")
    listing.add_argument("user_id", type=member_id, nargs="?", metavar="USER_ID", help="only this member's keys")
    listing.add_argument("--all", action="store_true", help="also revoked keys")
    revoke = actions.add_parser("revoke", help="stop a key working (within seconds in a running bot)")
    revoke.add_argument("key_id", type=key_id_argument, metavar="KEY_ID")
    actions.add_parser("users", help="the local web users (made with apikey create --local NAME)")


def server_id(text: str) -> int:
    """A Discord server id (argparse type): a whole number from 0 (0: the web's own rules)."""
    from bot.operations.cli import MAX_USER_ID

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a server id (a whole number such as 123456789)") from None
    if not 0 <= value <= MAX_USER_ID:
        raise argparse.ArgumentTypeError(f"{text} is not a server id (a whole number from 0 to {MAX_USER_ID})")
    return value


def key_id_argument(text: str) -> str:
    """A key id (argparse type) as ``apikey list`` shows it; a whole key is accepted and only its id kept."""
    from bot.application.api_keys import KEY_ID_CHARS, key_id_of

    text = text.strip()
    if len(text) == KEY_ID_CHARS and all(char in "0123456789abcdef" for char in text):
        return text
    found = key_id_of(text)
    if found is not None:
        return found
    shown = repr(text) if len(text) <= MAX_ARGUMENT_SHOWN else "that"
    raise argparse.ArgumentTypeError(f"{shown} is not a key id ({KEY_ID_CHARS} hex digits; {LIST_HINT})")


async def manage_api_keys(settings: Settings, args: argparse.Namespace) -> int:
    """The owner's key commands. Everything the command line alone decides is checked before the database is
    opened; ``list``, ``users`` and ``revoke`` never create a database."""
    from bot.application.api_keys import ApiKeyError, clean_label
    from bot.operations.db_check import database_problem

    if args.action == "create":
        _check_create(args)
        try:
            args.label = clean_label(args.label)
        except ApiKeyError as error:
            raise UsageError(f"--label: {error}") from None
    path = settings.database_file
    problem = database_problem(path)
    if problem is not None:
        raise UsageError(problem)
    if not path.exists():
        if args.action == "revoke":
            raise UsageError(f"there is no key {args.key_id}; {LIST_HINT}")
        if args.action in ("list", "users"):
            print("no local web users yet" if args.action == "users" else "no keys yet")
            return EXIT_OK
    service = await _open(settings)
    try:
        keys = service.keys
        if args.action == "create":
            return await _create(settings, keys, args)
        if args.action == "list":
            return await _list(keys, args.user_id, include_revoked=args.all)
        if args.action == "revoke":
            return await _revoke(keys, args.key_id)
        return await _users(keys)
    except ApiKeyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except sqlite3.Error as error:
        print(f"error: the database {path} refused the change: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await service.close()


def _check_create(args: argparse.Namespace) -> None:
    """``apikey create`` names exactly one member, never the console; a local name is well formed."""
    from bot.application.api_keys import LOCAL_NAME
    from bot.scheduling.ledger import CONSOLE_USER_ID

    if args.local is None and args.user_id is None:
        raise UsageError("name the key's member: apikey create USER_ID, or apikey create --local NAME")
    if args.local is not None and args.user_id is not None:
        raise UsageError("name one member: USER_ID or --local NAME, not both")
    if args.user_id == CONSOLE_USER_ID:
        raise UsageError(
            f"{CONSOLE_USER_ID} is the console's own id, not a member: name a Discord user id, or use --local NAME"
        )
    if args.local is not None and not LOCAL_NAME.match(args.local):
        shown = repr(args.local) if len(args.local) <= MAX_ARGUMENT_SHOWN * 2 else "that"
        raise UsageError(
            f"--local {shown} is not a user name: use 1-32 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


async def _open(settings: Settings) -> ImagineService:
    from bot.application.service import ImagineService

    try:
        return await ImagineService.open(settings, only_own_jobs=True)  # no worker, no engine, no recovery
    except (sqlite3.Error, OSError) as error:
        raise UsageError(f"could not open the database {settings.database_file}: {error}") from None


async def _create(settings: Settings, keys: ApiKeys, args: argparse.Namespace) -> int:
    made: LocalUser | None = None
    if args.local is not None:
        user, made = await _local_user(keys, args.local)
        user_id = user.user_id
    else:
        user_id = args.user_id
        if user_id < 0 and not any(user.user_id == user_id for user in await keys.local_users()):
            raise UsageError(
                f"there is no local web user with id {user_id}; make one with: python -m bot apikey create "
                "--local NAME (list them with: python -m bot apikey users)"
            )
    guild_id = settings.web.rules_guild_id if args.guild is None else args.guild
    issued = await keys.issue(
        user_id, guild_id=guild_id, created_by=CREATED_BY, label=args.label, moderator=args.moderator
    )
    log.info("made API key %s for member %d (server %d)", issued.identity.key_id, user_id, guild_id)
    if made is not None:
        print(f"made the local web user {made.name} (id {made.user_id})")
    print(_issued_text(settings, issued, args.local))
    if not settings.web.enabled:
        print("note: the web UI and APIs are off ([web] enabled = false); the key works once they are on")
    return EXIT_OK


async def _local_user(keys: ApiKeys, name: str) -> tuple[LocalUser, LocalUser | None]:
    """The local user ``name`` and, when this call made it, the same user again (else None)."""
    from bot.application.api_keys import ApiKeyError

    found = await keys.local_user(name)
    if found is not None:
        return found, None
    try:
        made = await keys.create_local_user(name)
    except ApiKeyError:  # made by another shell meanwhile
        found = await keys.local_user(name)
        if found is None:
            raise
        return found, None
    return made, made


def _issued_text(settings: Settings, issued: IssuedKey, local_name: str | None) -> str:
    """What ``apikey create`` prints: the key alone on its line, then how to use it."""
    identity = issued.identity
    member = f"{local_name} (id {identity.user_id})" if local_name else f"member {identity.user_id}"
    details = [f"server {identity.guild_id}" if identity.guild_id else "the web's own rules"]
    if identity.moderator:
        details.append("moderator")
    if issued.label:
        details.append(f"label {issued.label!r}")
    return "\n".join(
        [
            f"API key {identity.key_id} for {member} ({', '.join(details)}):",
            issued.secret,
            f"It is shown only once: store it now (python -m bot apikey revoke {identity.key_id} stops it working).",
            "Use it as the header 'Authorization: Bearer <key>', or as the password of HTTP Basic (any user name) "
            "in A1111 clients.",
            f"Web UI: {settings.web.address}",
        ]
    )


async def _list(keys: ApiKeys, user_id: int | None, *, include_revoked: bool) -> int:
    records = await keys.records(user_id, include_revoked=include_revoked)
    if not records:
        whose = f" for member {user_id}" if user_id is not None else ""
        print(f"no keys{whose}" if include_revoked else f"no active keys{whose} (--all shows revoked ones too)")
        return EXIT_OK
    names = {user.user_id: user.name for user in await keys.local_users()}
    header = ("KEY ID", "MEMBER", "SERVER", "LABEL", "MODERATOR", "CREATED", "LAST USED", "REVOKED")
    print(_table([header, *(_key_row(record, names) for record in records)]))
    return EXIT_OK


def _key_row(record: ApiKeyRecord, names: dict[int, str]) -> tuple[str, ...]:
    name = names.get(record.user_id)
    member = f"{name} ({record.user_id})" if name is not None else str(record.user_id)
    return (
        record.key_id,
        member,
        str(record.guild_id) if record.guild_id else "0 (web)",
        record.label or "-",
        "yes" if record.moderator else "no",
        when(record.created_at),
        when(record.last_used_at),
        when(record.revoked_at),
    )


async def _revoke(keys: ApiKeys, key_id: str) -> int:
    from bot.application.api_keys import CACHE_S

    records = await keys.records(include_revoked=True)
    found = next((record for record in records if record.key_id == key_id), None)
    if found is None:
        raise UsageError(f"there is no key {key_id}; {LIST_HINT}")
    if not found.active:
        print(f"error: key {key_id} was already revoked ({when(found.revoked_at)})", file=sys.stderr)
        return EXIT_FAILED
    record = await keys.revoke(key_id, by=CREATED_BY)
    log.info("revoked API key %s of member %d", key_id, record.user_id)
    print(f"key {key_id} of member {record.user_id} revoked; a running bot refuses it within {CACHE_S:.0f} s")
    return EXIT_OK


async def _users(keys: ApiKeys) -> int:
    users = await keys.local_users()
    if not users:
        print("no local web users yet; make one with: python -m bot apikey create --local NAME")
        return EXIT_OK
    active: dict[int, int] = {}
    for record in await keys.records():
        active[record.user_id] = active.get(record.user_id, 0) + 1
    header = ("ID", "NAME", "CREATED", "ACTIVE KEYS")
    rows = [(str(user.user_id), user.name, when(user.created_at), str(active.get(user.user_id, 0))) for user in users]
    print(_table([header, *rows]))
    return EXIT_OK


def when(timestamp: float | None) -> str:
    """A moment in the owner's local time, to the minute; ``-`` for none."""
    return "-" if timestamp is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _table(rows: list[tuple[str, ...]]) -> str:
    """Rows as left-aligned columns two spaces apart."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )
