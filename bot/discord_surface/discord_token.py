"""The Discord bot token: its shape, checked offline before anything tries it, and what to say when it is
missing.

A bot token is three base64url parts separated by dots: the bot's user id (a decimal number, base64url-encoded), a
timestamp and a signature. A placeholder (``...``, ``<token>``) or a half-copied token would otherwise be retried
against Discord forever when Discord cannot be reached. For a bot, the user id in the first part is also its
application id, which is all an invite link needs.

Nothing here ever returns or prints the token itself.
"""

from __future__ import annotations

import base64
import re

from config.sources import TOKEN_VARIABLE, misnamed_token_variables

PORTAL = "https://discord.com/developers/applications"
TOKEN_SHAPE_PROBLEM = (
    f"the Discord token in {TOKEN_VARIABLE} does not look like a bot token (three parts separated by dots); copy it "
    f"again from {PORTAL} -> your application -> Bot -> Reset Token"
)
TOKEN_WHAT = f"put {TOKEN_VARIABLE}=<token> in .env (from {PORTAL} -> your application -> Bot -> Reset Token)"
DOCKER_RESTART = "then run: docker compose up -d"
"""How a container picks up a changed .env: ``docker compose restart`` keeps the environment it was created with."""
TOKEN_HELP = """\
error: no Discord bot token is configured (setting discord_token, environment variable IMAGINE_DISCORD_TOKEN).

To get one: open https://discord.com/developers/applications, create an application (or pick yours),
open "Bot", press "Reset Token" and copy it. Then either
  - put IMAGINE_DISCORD_TOKEN=<token> in a .env file in this folder, or
  - export IMAGINE_DISCORD_TOKEN=<token> before starting the bot.
Then add the bot to your server: python -m bot invite prints the link, with exactly the permissions it needs.
To try everything without Discord: IMAGINE_MODEL=tiny python -m bot generate "a red fox --ar 3:2" -o fox.png"""
"""What ``run`` and ``invite`` print when no token is configured."""
BASE64URL_PART = re.compile(r"[A-Za-z0-9_-]+={0,2}")
MAX_SNOWFLAKE = 2**64
"""Discord ids are unsigned 64-bit numbers."""


def token_user_id(token: str) -> int | None:
    """The bot's user id encoded in the token's first part, or None when the token does not have a bot token's
    shape (three non-empty base64url parts separated by dots, the first decoding to a positive whole number)."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(BASE64URL_PART.fullmatch(part) for part in parts):
        return None
    first = parts[0].rstrip("=")
    try:
        decoded = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4))
    except ValueError:  # binascii.Error
        return None
    text = decoded.decode("ascii", errors="replace")
    if not (text.isascii() and text.isdigit()):
        return None
    user_id = int(text)
    return user_id if 0 < user_id < MAX_SNOWFLAKE else None


def token_shape_problem(token: str) -> str | None:
    """What to do about a token that cannot be a bot token, or None when its shape is right (whether Discord
    accepts it is only known by asking)."""
    return None if token_user_id(token) is not None else TOKEN_SHAPE_PROBLEM


def with_misnamed_variables(help_text: str) -> str:
    """``help_text`` with, after its first line, one line per token variable of another name that is set
    (``found DISCORD_TOKEN in .env; this bot reads IMAGINE_DISCORD_TOKEN: rename it``)."""
    found = misnamed_token_variables()
    if not found:
        return help_text
    first, _, rest = help_text.partition("\n")
    return "\n".join([first, *found, rest])


TOKEN_REJECTED = (
    "Discord rejected the token (IMAGINE_DISCORD_TOKEN). Reset it in the developer portal (Bot -> Reset Token) "
    "and paste the new one."
)
"""What ``run`` and ``invite`` say when Discord refuses the token at login."""


def no_token_line() -> str:
    """That no token is configured, in one line (what ``run --hold-on-config-error`` says): where to put it, or the
    variable of another name to rename, then how to restart (in Docker: the command that re-reads .env)."""
    from bot.operations.folders import in_docker

    found = misnamed_token_variables()
    what = "; ".join(found) if found else TOKEN_WHAT
    then = f", {DOCKER_RESTART}" if in_docker() else " and start the bot again"
    return f"no Discord bot token is configured: {what}{then}"
