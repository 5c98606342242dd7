"""Connecting to Discord and staying connected: what ``python -m bot run`` does after reading the settings.

A machine that cannot reach Discord yet (no network at boot, DNS down, Discord having an outage) is not a reason
to exit: a restart policy would only turn that into a crash loop. So the bot retries with backoff (1 s doubling to
60 s), one log line per attempt, for as long as it takes. It gives up only for what a restart cannot fix: a token
Discord rejects, or a privileged intent that is not enabled in the developer portal.

Each attempt uses a fresh :class:`~bot.discord_surface.discord_bot.ImagineBot`, closed before the next one: ``login()``
runs ``setup_hook`` (which opens the service and its engine) only once it has reached Discord, and a failed attempt
closes whatever it opened, so nothing leaks and ``setup_hook`` never runs twice on one bot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import discord

from bot.discord_surface.discord_token import TOKEN_REJECTED
from config.settings import Settings

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    discord.GatewayNotFound,
)
"""Errors of a connection that may work on the next try (aiohttp's DNS and connect errors are OSErrors too)."""


FATAL_CLOSE_CODES: dict[int, str] = {
    4004: "the token is not valid; reset it in the developer portal (Bot -> Reset Token)",
    4010: "an invalid shard was sent",
    4011: "the bot is in too many servers to run without sharding",
    4012: "this discord.py speaks a gateway version Discord no longer accepts; upgrade discord.py",
    4013: "the bot asked for intents that do not exist",
    4014: "a privileged intent is not enabled in the developer portal (Bot -> Privileged Gateway Intents)",
}
"""Gateway close codes a reconnect cannot fix."""


class FatalDiscordError(Exception):
    """Discord refused the bot for a reason a restart cannot fix; the message says what to change."""


@dataclass
class Backoff:
    """Delays of 1 s doubling to 60 s; :meth:`reset` after a connection that worked."""

    first_s: float = FIRST_DELAY_S
    max_s: float = MAX_DELAY_S
    current_s: float = FIRST_DELAY_S

    def next_delay(self) -> float:
        """The delay to wait now; the one after it is twice as long (at most ``max_s``)."""
        delay = self.current_s
        self.current_s = min(self.current_s * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self.current_s = self.first_s


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed: network errors, Discord's 5xx and rate limits; not a bad token."""
    if isinstance(error, discord.LoginFailure | discord.PrivilegedIntentsRequired):
        return False
    if isinstance(error, discord.HTTPException):
        return error.status >= 500 or error.status == 429
    if isinstance(error, discord.ConnectionClosed):
        return error.code not in FATAL_CLOSE_CODES
    return isinstance(error, NETWORK_ERRORS)


def describe(error: BaseException) -> str:
    """One line naming the error, for a log line (never a traceback)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


async def serve_forever(
    settings: Settings,
    token: str,
    *,
    make_bot: Callable[[Settings], discord.Client] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Log in and stay connected, retrying what may work later. Raises FatalDiscordError for what cannot.

    Returns when the bot is closed (``bot.close()``); KeyboardInterrupt and cancellation pass through.
    """
    if make_bot is None:
        from bot.discord_surface.discord_bot import ImagineBot

        make_bot = ImagineBot
    backoff = Backoff()
    attempt = 0
    while True:
        attempt += 1
        async with make_bot(settings) as bot:
            try:
                await bot.login(token)
                backoff.reset()
                await bot.connect(reconnect=True)
                return
            except discord.LoginFailure:
                raise FatalDiscordError(TOKEN_REJECTED) from None
            except discord.PrivilegedIntentsRequired:
                raise FatalDiscordError(
                    "the bot asked for a privileged intent that is not enabled in the developer portal "
                    "(Bot -> Privileged Gateway Intents)"
                ) from None
            except discord.ConnectionClosed as error:
                if is_retryable(error):
                    delay = backoff.next_delay()
                    log.warning("Discord closed the connection (code %s); reconnecting in %.0f s", error.code, delay)
                else:
                    raise FatalDiscordError(
                        f"Discord closed the connection with code {error.code} ({error.reason or 'no reason'}): "
                        + FATAL_CLOSE_CODES.get(error.code or 0, "see the Discord gateway close codes")
                    ) from None
            except Exception as error:
                if not is_retryable(error):
                    raise
                delay = backoff.next_delay()
                log.warning(
                    "could not reach Discord (attempt %d): %s; retrying in %.0f s", attempt, describe(error), delay
                )
        await sleep(delay)


VOICE_WARNINGS = frozenset(
    {"PyNaCl is not installed, voice will NOT be supported", "davey is not installed, voice will NOT be supported"}
)
"""discord.py's start-up warnings about voice libraries: the bot never joins a voice channel."""


class QuietDiscordClient(logging.Filter):
    """Keep discord.py's client log to one line per event: its "logging in" line and its warnings about voice
    libraries are dropped (the retry loop logs each attempt; the bot has no voice), and a gateway reconnect is
    logged with the error's name instead of a full traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "logging in using static token" or record.msg in VOICE_WARNINGS:
            return False
        if record.exc_info and record.exc_info[1] is not None and "reconnect" in str(record.msg):
            record.msg = f"{record.getMessage()} ({describe(record.exc_info[1])})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_discord_client() -> None:
    """Install :class:`QuietDiscordClient` on discord.py's client logger (once)."""
    logger = logging.getLogger("discord.client")
    if not any(isinstance(item, QuietDiscordClient) for item in logger.filters):
        logger.addFilter(QuietDiscordClient())
