"""What a new server owner gets wrong on a first install, through ``python -m bot`` (``bot.operations.cli.main``) with
real
files: a configuration file the bot cannot read, does not find or finds as a folder, a token that is a placeholder
or sits in the wrong variable, ``credits give``, Docker's held no-token line, and ``invite`` without Discord."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import discord
import pytest
from aiohttp import web

from bot.discord_surface.discord_setup import invite_url
from bot.discord_surface.discord_token import TOKEN_SHAPE_PROBLEM, token_user_id
from bot.operations.cli import main

pytestmark = pytest.mark.usefixtures("in_process_cli")  # bot.operations.cli.main runs here: see tests/conftest.py

FAKE_TOKEN = "ODk5.fake-token-for-tests." + "x" * 27
"""The token shape other tests use: its first part is base64url for the user id 899."""
BOT_ID = 1234567890123456789
REAL_SHAPED_TOKEN = base64.urlsafe_b64encode(str(BOT_ID).encode()).decode().rstrip("=") + ".GxYz12." + "s" * 38
HOLDING = "waiting until stopped (not exiting, so nothing restarts the bot in a loop)"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The owner's working folder (where .env and config/bot.toml are looked for), with its own data folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IMAGINE_MODEL", "tiny")
    for name in ("DISCORD_TOKEN", "BOT_TOKEN", "TOKEN", "IMAGINEBOT_DOCKER"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


# --- an unreadable file, for real, also as root -------------------------------------------------------------------

CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapabilityHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapabilityData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


@contextlib.contextmanager
def unreadable(path: Path) -> Iterator[None]:
    """``path`` (mode 000) cannot be opened by this thread: as root, the two capabilities that let root ignore file
    permissions are taken out of this thread's effective set while the block runs (capabilities are per thread)."""
    path.chmod(0)
    try:
        if os.geteuid() != 0:
            yield
            return
        libc = ctypes.CDLL(None, use_errno=True)
        data = (_CapabilityData * 2)()
        if libc.capget(ctypes.byref(_CapabilityHeader(LINUX_CAPABILITY_VERSION_3, 0)), data) != 0:
            pytest.skip("capget is not available")
        saved = data[0].effective
        data[0].effective &= ~((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH))
        if libc.capset(ctypes.byref(_CapabilityHeader(LINUX_CAPABILITY_VERSION_3, 0)), data) != 0:
            pytest.skip("this process may not change its capabilities")
        try:
            with pytest.raises(PermissionError):
                path.open("rb")
            yield
        finally:
            data[0].effective = saved
            libc.capset(ctypes.byref(_CapabilityHeader(LINUX_CAPABILITY_VERSION_3, 0)), data)
    finally:
        path.chmod(0o644)


@contextlib.contextmanager
def stopped_once_waiting() -> Iterator[None]:
    """Sends SIGTERM to this process (as ``docker stop`` does) once the CLI waits, that is once it has installed its
    own SIGTERM handler; nothing is sent if it never does."""
    default = signal.getsignal(signal.SIGTERM)
    done = threading.Event()

    def stop() -> None:
        while not done.wait(0.02):
            if signal.getsignal(signal.SIGTERM) is not default:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class StillRunningError(Exception):
    """The command went on (connecting to Discord, waiting) where it should have answered at once."""


@contextlib.contextmanager
def answered_within(seconds: float) -> Iterator[None]:
    """Raise StillRunningError in this (the main) thread if the block runs longer than ``seconds``."""

    def too_long(signum: int, frame: object) -> None:
        raise StillRunningError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``python -m bot ARGS``, answered within 20 s; never a traceback."""
    with answered_within(20):
        code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


def _held(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``run --hold-on-config-error``: the one line said before waiting; stopped, it exits 0."""
    with stopped_once_waiting():
        code, out, err = _cli(capsys, "run", "--hold-on-config-error", *args)
    assert code == 0, err
    [line] = err.splitlines()
    assert line.startswith("error: ") and line.endswith(f"; {HOLDING}"), line
    assert out == ""
    return line


@pytest.mark.parametrize("command", [["run"], ["doctor", "--no-probe"], ["health"], ["run", "--hold-on-config-error"]])
def test_an_unreadable_config_file_is_a_configuration_error(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """A config file the bot's user cannot open: exit 2 saying whose it must be (health: unhealthy, 1; held: one
    line, then waiting), never a PermissionError traceback."""
    toml = folder / "bot.toml"
    toml.write_text('model = "tiny"\n')
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    monkeypatch.setenv("IMAGINE_DISCORD_TOKEN", FAKE_TOKEN)
    expected = (
        f"cannot read the configuration file {toml} (Permission denied): it must be readable by the user the bot "
        f"runs as (uid {os.geteuid()})"
    )
    with unreadable(toml):
        if command[-1] == "--hold-on-config-error":
            assert _held(capsys) == f"error: {expected}; {HOLDING}"
            return
        code, out, err = _cli(capsys, *command)
    if command == ["health"]:
        assert (code, out) == (1, f"unhealthy: {expected}\n")
    else:
        assert (code, err) == (2, f"error: {expected}\n")


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_an_explicit_config_file_must_exist(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """IMAGINE_CONFIG naming a file that is not there, or a folder (what Docker mounts when the host file is
    missing), is refused naming the path instead of silently running on the defaults."""
    path = folder / "conf" / "bot.toml"
    if kind == "folder":
        path.mkdir(parents=True)
    monkeypatch.setenv("IMAGINE_CONFIG", str(path))
    code, _, err = _cli(capsys, "doctor", "--no-probe")
    assert code == 2
    assert err.startswith(f"error: the configuration file {path}")
    assert ("does not exist" if kind == "missing" else "is a folder, not a file") in err


def test_doctor_says_which_files_it_read(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without config/bot.toml and .env (optional both) doctor says none was found in the working folder; with
    them, their full paths."""
    monkeypatch.delenv("IMAGINE_CONFIG")
    code, out, _ = _cli(capsys, "doctor", "--no-probe")
    assert code == 1  # no token
    assert f"configuration file: none (config/bot.toml not found in {folder})" in out.splitlines()
    assert f".env file: none (.env not found in {folder})" in out.splitlines()
    (folder / "config").mkdir()
    (folder / "config" / "bot.toml").write_text('model = "tiny"\n')
    (folder / ".env").write_text(f"IMAGINE_DISCORD_TOKEN={FAKE_TOKEN}\n")
    code, out, _ = _cli(capsys, "doctor", "--no-probe")
    assert code == 0, out
    assert f"configuration file: {folder / 'config' / 'bot.toml'}" in out.splitlines()
    assert f".env file: {folder / '.env'}" in out.splitlines()
    assert FAKE_TOKEN not in out


def test_a_toml_syntax_error_names_the_file_and_line(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A table declared twice: the file, the line and TOML's reason, in one line, exit 2."""
    (folder / "config").mkdir()
    (folder / "config" / "bot.toml").write_text("[tiers.free]\nallowance = 5\n\n[tiers.free]\nmax_running = 2\n")
    monkeypatch.delenv("IMAGINE_CONFIG")
    code, _, err = _cli(capsys, "run")
    assert code == 2
    assert err == (
        "error: could not read the configuration: config/bot.toml line 4: Cannot declare ('tiers', 'free') twice "
        "(column 12)\n"
    )


def test_health_says_a_configuration_error_in_one_clean_line(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two problems: ``unhealthy: invalid configuration: a; b``, exit 1, no ``:;`` or ``- `` left over."""
    monkeypatch.setenv("IMAGINE_MODLE", "tiny")
    monkeypatch.setenv("IMAGINE_MAX_STESP", "5")
    code, out, _ = _cli(capsys, "health")
    assert code == 1
    assert out == (
        "unhealthy: invalid configuration: environment: IMAGINE_MAX_STESP is not a setting (did you mean "
        "IMAGINE_MAX_STEPS?); environment: IMAGINE_MODLE is not a setting (did you mean IMAGINE_MODEL?)\n"
    )


# --- the token ----------------------------------------------------------------------------------------------------

NOT_TOKENS = ["...", "<token>", "abc", "a.b.c", "MTIz..", f"Bot {REAL_SHAPED_TOKEN}", "x" * 70]


@pytest.mark.parametrize("token", NOT_TOKENS)
@pytest.mark.parametrize("command", ["run", "invite"])
def test_a_token_that_is_not_a_bot_token_is_refused(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], token: str, command: str
) -> None:
    """A placeholder or half-copied token: exit 2 before any connection, with where to copy it from, and the
    value never printed."""
    monkeypatch.setenv("IMAGINE_DISCORD_TOKEN", token)
    code, out, err = _cli(capsys, command)
    assert (code, out, err) == (2, "", f"error: {TOKEN_SHAPE_PROBLEM}\n")
    assert not (folder / "data").exists()  # refused before anything was written


@pytest.mark.parametrize("token", [FAKE_TOKEN, REAL_SHAPED_TOKEN])
def test_a_bot_token_shape_gives_its_user_id(token: str) -> None:
    """The first part of a bot token is its user id in base64url, also without padding."""
    assert token_user_id(token) == (899 if token == FAKE_TOKEN else BOT_ID)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_invite_without_discord_builds_the_link_from_the_token(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Discord cannot be reached: the link for the application id in the token, said to be built offline, exit 0."""
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{_closed_port()}/api/v10")
    monkeypatch.setenv("IMAGINE_DISCORD_TOKEN", REAL_SHAPED_TOKEN)
    code, out, err = _cli(capsys, "invite")
    assert code == 0, err
    assert out == invite_url(BOT_ID) + "\n"
    first = err.splitlines()[0]
    assert first.startswith("could not reach Discord (")
    assert f"this link was built offline from the token (application id {BOT_ID}" in first
    assert "View Channel" in err
    assert REAL_SHAPED_TOKEN not in out + err


def test_invite_online_reads_the_application_from_discord(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When Discord answers, the application id comes from Discord (here it differs from the token's user id)."""
    application_id = 4242424242
    port = _closed_port()
    ready = threading.Event()
    server = threading.Thread(target=asyncio.run, args=(_local_discord(port, application_id, ready),), daemon=True)
    server.start()
    assert ready.wait(10)
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{port}/api/v10")
    monkeypatch.setenv("IMAGINE_DISCORD_TOKEN", FAKE_TOKEN)
    try:
        code, out, err = _cli(capsys, "invite")
    finally:
        ready.clear()
        server.join(10)
    assert code == 0, err
    assert out == invite_url(application_id) + "\n"
    assert "offline" not in err


async def _local_discord(port: int, application_id: int, ready: threading.Event) -> None:
    """Discord's two routes ``invite`` uses, on ``port``, until ``ready`` is cleared."""
    bot = {"id": "899", "username": "imaginebot", "discriminator": "0", "avatar": None}
    application = {
        "id": str(application_id), "name": "imaginebot", "icon": None, "description": "", "bot_public": True,
        "bot_require_code_grant": False, "verify_key": "0" * 64, "owner": bot, "flags": 0, "team": None,
    }  # fmt: skip

    def answer(payload: dict[str, object]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})

        return handler

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", answer(bot))
    app.router.add_get("/api/v10/oauth2/applications/@me", answer(application))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ready.set()
    try:
        while ready.is_set():  # noqa: ASYNC110 - the test's thread clears a threading.Event
            await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("where", "name"),
    [(".env", "DISCORD_TOKEN"), (".env", "BOT_TOKEN"), ("environment", "TOKEN"), ("environment", "DISCORD_TOKEN")],
)
def test_a_token_in_another_variable_is_pointed_out(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str, name: str
) -> None:
    """No IMAGINE_DISCORD_TOKEN but a DISCORD_TOKEN (TOKEN, BOT_TOKEN) other bots read: say to rename it, in the
    full help, the held line and invite's help, without the value."""
    if where == ".env":
        (folder / ".env").write_text(f"{name}={FAKE_TOKEN}\n")
    else:
        monkeypatch.setenv(name, FAKE_TOKEN)
    place = ".env" if where == ".env" else "the environment"
    hint = f"found {name} in {place}; this bot reads IMAGINE_DISCORD_TOKEN: rename it"
    code, _, err = _cli(capsys, "run")
    assert code == 2
    assert hint in err.splitlines()
    assert _held(capsys) == f"error: no Discord bot token is configured: {hint} and start the bot again; {HOLDING}"
    code, out, err = _cli(capsys, "invite")
    assert (code, out) == (2, "")
    assert hint in err.splitlines()
    assert FAKE_TOKEN not in err


def test_imagine_token_suggests_imagine_discord_token(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """IMAGINE_TOKEN is not a setting; the nearest one is IMAGINE_DISCORD_TOKEN."""
    monkeypatch.setenv("IMAGINE_TOKEN", FAKE_TOKEN)
    code, _, err = _cli(capsys, "run")
    assert code == 2
    assert "IMAGINE_TOKEN is not a setting (did you mean IMAGINE_DISCORD_TOKEN?)" in err
    assert FAKE_TOKEN not in err


def test_in_docker_the_held_no_token_line_says_to_recreate_the_container(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``docker compose restart`` keeps the old environment: in the image, the line says ``docker compose up -d``."""
    monkeypatch.setenv("IMAGINEBOT_DOCKER", "1")
    line = _held(capsys)
    assert line.startswith("error: no Discord bot token is configured: put IMAGINE_DISCORD_TOKEN=<token> in .env")
    assert line.endswith(f"Reset Token), then run: docker compose up -d; {HOLDING}")
    assert "start the bot again" not in line


# --- credits give -------------------------------------------------------------------------------------------------


def test_credits_give_is_credits_grant(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``credits give`` (the words of /admin credits give) grants like ``credits grant``, and help lists it."""
    code, out, _ = _cli(capsys, "credits", "give", "42", "5", "--reason", "welcome")
    assert code == 0
    given = out
    code, out, _ = _cli(capsys, "credits", "grant", "43", "5", "--reason", "welcome")
    assert code == 0
    assert given.replace("42", "43") == out
    code, out, _ = _cli(capsys, "credits", "show", "42")
    assert code == 0
    assert "+5" in out and "welcome" in out
    with pytest.raises(SystemExit):
        main(["credits", "--help"])
    assert "grant (give)" in capsys.readouterr().out
