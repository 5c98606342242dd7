"""Connecting to Discord: retried with backoff while unreachable, given up only for what a restart cannot fix."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import aiohttp
import discord
import pytest

from bot.discord_surface.connection import Backoff, FatalDiscordError, is_retryable, serve_forever
from config.settings import Settings
from tests.ahead import child_environment

ROOT = Path(__file__).resolve().parents[3]
UNREACHABLE = "http://127.0.0.1:9/api/v10"
"""Nothing listens on port 9 (discard): every request is refused at once, like a machine without network."""
TOKEN = "ODk5.fake-token-for-tests." + "x" * 27


class StopRetryingError(Exception):
    """Raised by the test's sleep to end the retry loop."""


class RecordingBot(discord.Client):
    """A real discord.py client that counts setup_hook runs and closes."""

    made: ClassVar[list[RecordingBot]] = []

    def __init__(self, settings: Settings) -> None:
        super().__init__(intents=discord.Intents.none())
        self.setups = 0
        self.closes = 0
        RecordingBot.made.append(self)

    async def setup_hook(self) -> None:
        self.setups += 1

    async def close(self) -> None:
        self.closes += 1
        await super().close()


def test_backoff_doubles_to_a_minute_and_resets() -> None:
    """1, 2, 4 … 60, 60 seconds; a connection that worked starts again at 1 s."""
    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    backoff.reset()
    assert backoff.next_delay() == 1


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (aiohttp.ClientConnectionError("no route"), True),
        (OSError("dns"), True),
        (TimeoutError(), True),
        (discord.LoginFailure("bad token"), False),
        (discord.PrivilegedIntentsRequired(None), False),
        (ValueError("a bug"), False),
    ],
)
def test_is_retryable(error: BaseException, retry: bool) -> None:
    """Network trouble is retried; a rejected token, a missing intent or a bug is not."""
    assert is_retryable(error) is retry


async def test_unreachable_discord_is_retried_forever_with_backoff(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Each attempt is one log line without a traceback, uses a fresh client that is closed again, and never
    runs setup_hook (which opens the service) before Discord answered."""
    monkeypatch.setattr(discord.http.Route, "BASE", UNREACHABLE)
    RecordingBot.made.clear()
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 8:
            raise StopRetryingError

    settings = Settings(_env_file=None, model="tiny", data_dir=tmp_path)  # type: ignore[call-arg]
    with caplog.at_level(logging.WARNING, logger="bot.discord_surface.connection"), pytest.raises(StopRetryingError):
        await serve_forever(settings, TOKEN, make_bot=RecordingBot, sleep=sleep)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    lines = [record for record in caplog.records if record.name == "bot.discord_surface.connection"]
    assert [f"(attempt {n})" in record.getMessage() for n, record in enumerate(lines, 1)] == [True] * 8
    assert all(record.exc_info is None and "\n" not in record.getMessage() for record in lines)
    assert len(RecordingBot.made) == 8
    assert all(bot.setups == 0 and bot.closes == 1 and bot.is_closed() for bot in RecordingBot.made)


class _RejectEveryToken(BaseHTTPRequestHandler):
    """Discord's answer to a bad token: 401 on /users/@me."""

    def do_GET(self) -> None:
        body = json.dumps({"message": "401: Unauthorized", "code": 0}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def rejecting_discord() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RejectEveryToken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v10"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_rejected_token_is_not_retried(rejecting_discord: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 from Discord ends the loop with FatalDiscordError after one attempt; the client is closed."""
    monkeypatch.setattr(discord.http.Route, "BASE", rejecting_discord)
    RecordingBot.made.clear()

    async def sleep(delay: float) -> None:
        raise AssertionError("a rejected token must not be retried")

    settings = Settings(_env_file=None, model="tiny")  # type: ignore[call-arg]
    with pytest.raises(FatalDiscordError, match="Discord rejected the token"):
        await serve_forever(settings, TOKEN, make_bot=RecordingBot, sleep=sleep)
    assert [(bot.setups, bot.closes) for bot in RecordingBot.made] == [(0, 1)]


def test_run_exits_2_when_discord_rejects_the_token(rejecting_discord: str, tmp_path: Path) -> None:
    """`python -m bot run` with a token Discord rejects: exit 2, how to fix it, no traceback, no token shown."""
    code = (
        "import sys, discord.http\n"
        f"discord.http.Route.BASE = {rejecting_discord!r}\n"
        "from bot.operations.cli import main\n"
        "sys.exit(main(['run']))\n"
    )
    environment = child_environment(IMAGINE_MODEL="tiny", IMAGINE_DISCORD_TOKEN=TOKEN)
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2, completed.stderr
    assert "Discord rejected the token (IMAGINE_DISCORD_TOKEN)" in completed.stderr
    assert "Traceback" not in completed.stderr and TOKEN not in completed.stderr


def test_no_voice_library_warnings_at_start_up(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """discord.py warns at start-up that PyNaCl and davey are missing; the bot has no voice, so the log stays clean."""
    from bot.discord_surface.connection import quiet_discord_client

    monkeypatch.setattr(discord.VoiceClient, "warn_nacl", True)
    monkeypatch.setattr(discord.VoiceClient, "warn_dave", True, raising=False)
    quiet_discord_client()
    with caplog.at_level(logging.WARNING, logger="discord.client"):
        discord.Client(intents=discord.Intents.none())
    assert not [record for record in caplog.records if "voice" in record.getMessage()]
