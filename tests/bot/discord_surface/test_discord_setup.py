"""The Discord set-up rules: the permission table and its bitfield, the invite URL, missing-permission texts, the
start-up line, and ``python -m bot invite`` (simcord's application route, a local HTTP stand-in for a rejected
token or a silent Discord, and the command's refusals in a subprocess)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
import simcord
from aiohttp import web

from bot.discord_surface.discord_setup import (
    NEEDED_PERMISSIONS,
    InviteError,
    application_invite,
    describe_post_refusal,
    invite_for_token,
    invite_permissions,
    invite_url,
    join_names,
    missing_permissions,
    permissions_text,
    refusal_text,
    startup_report,
)
from tests.ahead import Command, Interaction, Prepare, Ran, ahead, child_environment

ROOT = Path(__file__).resolve().parents[3]
FAKE_TOKEN = "ODk5.fake-token-for-tests." + "x" * 27
INVITE_BITS = 274877959168
"""View Channel 1<<10, Send Messages 1<<11, Embed Links 1<<14, Attach Files 1<<15, Send Messages in Threads 1<<38."""
APP_ID = 1234567890123456789


# --- the table ----------------------------------------------------------------------------------------------------


def test_the_invite_bitfield_is_pinned() -> None:
    """Exactly the five permissions, and nothing the bot does not use (no Read Message History, no admin)."""
    permissions = invite_permissions()
    assert permissions.value == INVITE_BITS
    flags = ("view_channel", "send_messages", "send_messages_in_threads", "embed_links", "attach_files")
    assert permissions == discord.Permissions(**dict.fromkeys(flags, True))
    assert not permissions.read_message_history
    assert not permissions.administrator


def test_every_row_names_a_real_flag_and_says_why() -> None:
    """Each row is a discord.Permissions flag with a UI name and a reason (the README list is built from them)."""
    for needed in NEEDED_PERMISSIONS:
        assert isinstance(getattr(discord.Permissions, needed.flag), discord.flags.flag_value)
        assert needed.name and needed.why
        assert f"- {needed.name}: {needed.why}" in permissions_text().splitlines()


def test_invite_url_has_both_scopes_and_the_bitfield() -> None:
    """The URL Discord documents: client id, the bot and applications.commands scopes, the permissions."""
    assert invite_url(APP_ID) == (
        f"https://discord.com/oauth2/authorize?client_id={APP_ID}"
        f"&scope=bot+applications.commands&permissions={INVITE_BITS}"
    )


def test_invite_url_refuses_a_non_id() -> None:
    """An application id of 0 is a bug, not a URL."""
    with pytest.raises(ValueError, match="positive snowflake"):
        invite_url(0)


ALL = discord.Permissions(INVITE_BITS)


@pytest.mark.parametrize(
    ("granted", "thread", "missing"),
    [
        (ALL, False, []),
        (ALL, True, []),
        (discord.Permissions(INVITE_BITS & ~discord.Permissions.attach_files.flag), False, ["Attach Files"]),
        (
            discord.Permissions(INVITE_BITS & ~(discord.Permissions.attach_files.flag | 1 << 14)),
            False,
            ["Attach Files", "Embed Links"],
        ),
        (discord.Permissions(INVITE_BITS & ~discord.Permissions.send_messages.flag), False, ["Send Messages"]),
        (discord.Permissions(INVITE_BITS & ~discord.Permissions.send_messages.flag), True, []),
        (
            discord.Permissions(INVITE_BITS & ~discord.Permissions.send_messages_in_threads.flag),
            True,
            ["Send Messages in Threads"],
        ),
        (discord.Permissions(INVITE_BITS & ~discord.Permissions.send_messages_in_threads.flag), False, []),
        (
            discord.Permissions.none(),
            False,
            ["View Channel", "Send Messages", "Attach Files", "Embed Links"],
        ),
    ],
    ids=[
        "all",
        "all-thread",
        "no-attach",
        "no-attach-no-embed",
        "no-send",
        "no-send-in-a-thread-is-fine",
        "no-send-in-threads",
        "no-send-in-threads-outside-a-thread-is-fine",
        "nothing",
    ],
)
def test_missing_permissions(granted: discord.Permissions, thread: bool, missing: list[str]) -> None:
    """Which needed permissions a channel lacks; threads need Send Messages in Threads instead of Send Messages."""
    assert [needed.name for needed in missing_permissions(granted, thread=thread)] == missing


@pytest.mark.parametrize(
    ("names", "joined"),
    [([], ""), (["A"], "A"), (["A", "B"], "A and B"), (["A", "B", "C"], "A, B and C")],
)
def test_join_names(names: list[str], joined: str) -> None:
    """Names read as a sentence."""
    assert join_names(names) == joined


def test_refusal_text_names_channel_permissions_and_where() -> None:
    """One line: the channel, what to grant, where a moderator grants it."""
    missing = missing_permissions(discord.Permissions(view_channel=True, send_messages=True), thread=False)
    assert refusal_text("#art", missing) == (
        "I can't post images in #art: a moderator can give me Attach Files and Embed Links there "
        "(Server Settings → Roles, or the channel's permissions)"
    )


class _Response:
    """What discord.HTTPException reads from an aiohttp response: a status and a reason."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.reason = "Forbidden" if status == 403 else "Error"


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (403, 50013, "Missing Permissions", "Missing Permissions in channel 42"),
        (
            403,
            50001,
            "Missing Access",
            "Missing Access: in channel 42 the bot lacks View Channel; a moderator can give it View Channel there",
        ),
        (400, 50035, "Invalid Form Body", "Invalid Form Body"),
        (503, 0, "upstream", "upstream"),
    ],
    ids=["missing-permissions-uncached", "missing-access", "bad-body", "server-error"],
)
def test_describe_post_refusal_without_a_cached_channel(status: int, code: int, message: str, expected: str) -> None:
    """A permission refusal names the channel (and View Channel for Missing Access); other errors stay as sent."""
    error = discord.HTTPException(_Response(status), {"code": code, "message": message})  # type: ignore[arg-type]
    assert describe_post_refusal(error, None, 42).startswith(expected)


# --- the start-up line --------------------------------------------------------------------------------------------


def test_startup_report_in_no_server_gives_the_invite() -> None:
    """No server: the invite URL with the client id; without an id, the command that prints it."""
    line = startup_report("imaginebot#0001", 7, [], APP_ID)
    assert line == f"ready as imaginebot#0001 (id 7), in no server yet; invite it with {invite_url(APP_ID)}"
    assert "python -m bot invite" in startup_report("imaginebot", 7, [], None)


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ([("Pixel Club", 1)], "ready as bot (id 7) in 1 server: Pixel Club (id 1)"),
        ([("A", 1), ("B", 2)], "ready as bot (id 7) in 2 servers: A (id 1), B (id 2)"),
        ([("two\nlines", 3)], "ready as bot (id 7) in 1 server: two lines (id 3)"),
    ],
    ids=["one", "two", "name-with-a-newline"],
)
def test_startup_report_names_servers(servers: list[tuple[str, int]], expected: str) -> None:
    """Each server by name and id, one line even for a name with a line break."""
    assert startup_report("bot", 7, servers, APP_ID) == expected


def test_startup_report_cuts_a_long_list() -> None:
    """Twelve servers: the count, the first ten, and how many more."""
    servers = [(f"S{index}", index) for index in range(12)]
    line = startup_report("bot", 7, servers, APP_ID, limit=10)
    assert line.startswith("ready as bot (id 7) in 12 servers: S0 (id 0), ")
    assert "S9 (id 9)" in line and "S10" not in line
    assert line.endswith(" and 2 more")


# --- python -m bot invite -----------------------------------------------------------------------------------------


async def test_the_application_id_comes_from_the_application_route() -> None:
    """Through simcord: GET /oauth2/applications/@me gives the id the URL carries."""
    client = discord.Client(intents=discord.Intents.default())
    env = simcord.Env(client)
    await env.start()
    try:
        before = sum(1 for request in env.http_requests if request.path == "/oauth2/applications/@me")
        url = await application_invite(client)
        after = sum(1 for request in env.http_requests if request.path == "/oauth2/applications/@me")
    finally:
        await env.shutdown()
    assert url == invite_url(env.backend.application_id)
    assert after == before + 1


@pytest.fixture
async def local_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, int]]:
    """A local HTTP server standing in for Discord's API; ``behaviour['users_me']`` is the status of
    GET /users/@me (0: never answer). discord.py is pointed at it."""
    behaviour = {"users_me": 200}
    finished = asyncio.Event()

    def json_response(payload: object, status: int = 200) -> web.Response:
        # discord.py reads a body as JSON only when the content type is exactly application/json
        return web.Response(
            body=json.dumps(payload).encode(), status=status, headers={"Content-Type": "application/json"}
        )

    async def users_me(request: web.Request) -> web.Response:
        if behaviour["users_me"] == 0:
            await finished.wait()
        if behaviour["users_me"] == 401:
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return json_response({"id": "7", "username": "imaginebot", "discriminator": "0", "avatar": None})

    async def application(request: web.Request) -> web.Response:
        bot = {"id": "7", "username": "imaginebot", "discriminator": "0", "avatar": None}
        return json_response(
            {"id": str(APP_ID), "name": "imaginebot", "icon": None, "description": "", "bot_public": True,
             "bot_require_code_grant": False, "verify_key": "0" * 64, "owner": bot, "flags": 0, "team": None}
        )  # fmt: skip

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", users_me)
    app.router.add_get("/api/v10/oauth2/applications/@me", application)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    try:
        yield behaviour
    finally:
        finished.set()
        await runner.cleanup()


async def test_invite_for_token_logs_in_and_reads_the_application(local_discord: dict[str, int]) -> None:
    """Over HTTP: the token is checked, the application id read, the URL built."""
    assert await invite_for_token(FAKE_TOKEN) == invite_url(APP_ID)


async def test_a_rejected_token_is_exit_2(local_discord: dict[str, int]) -> None:
    """Discord answers 401: the token must change (exit 2), said in one line without the token."""
    local_discord["users_me"] = 401
    with pytest.raises(InviteError) as caught:
        await invite_for_token(FAKE_TOKEN)
    assert caught.value.exit_code == 2
    assert "rejected the token" in str(caught.value)
    assert FAKE_TOKEN not in str(caught.value)


async def test_a_silent_discord_is_exit_1(local_discord: dict[str, int]) -> None:
    """No answer within the limit: try again later (exit 1)."""
    local_discord["users_me"] = 0
    with pytest.raises(InviteError) as caught:
        await invite_for_token(FAKE_TOKEN, timeout_s=0.3)
    assert caught.value.exit_code == 1
    assert "did not answer" in str(caught.value)


UNREACHABLE_DISCORD = "http://127.0.0.1:9/api/v10"
"""A Discord API address where nothing listens (the discard port): a network that cannot reach Discord, on any
machine, without sending a token anywhere."""


def _invite(**env: str) -> Prepare:
    """``python -m bot invite`` with no IMAGINE_* variable but ``env`` and Discord unreachable, run ahead."""
    code = (
        "import sys, discord.http\n"
        f"discord.http.Route.BASE = {UNREACHABLE_DISCORD!r}\n"
        "from bot.operations.cli import main\n"
        "sys.exit(main(['invite']))\n"
    )

    def prepare(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
        return [Command([sys.executable, "-c", code], folder, child_environment(**env), timeout=120)]

    return prepare


@ahead(_invite())
def test_invite_without_a_token_explains_how_to_get_one(ran: Ran) -> None:
    """No token: the token help, exit 2, nothing on stdout."""
    (completed,) = ran.results
    assert completed.returncode == 2
    assert "IMAGINE_DISCORD_TOKEN" in completed.stderr
    assert "Reset Token" in completed.stderr
    assert completed.stdout == ""
    assert "Traceback" not in completed.stderr


@ahead(_invite(IMAGINE_DISCORD_TOKEN=FAKE_TOKEN))
def test_invite_that_cannot_reach_discord_builds_the_link_offline(ran: Ran) -> None:
    """A token when Discord cannot be reached: the link built from the token's application id, exit 0, no token,
    no traceback."""
    (completed,) = ran.results
    line = completed.stderr.strip().splitlines()[0]
    assert completed.returncode == 0, completed.stderr
    assert line.startswith("could not reach Discord (")
    assert completed.stdout == invite_url(899) + "\n"
    assert FAKE_TOKEN not in completed.stderr
