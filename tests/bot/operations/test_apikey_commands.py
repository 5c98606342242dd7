"""``python -m bot apikey create|list|revoke|users`` (``bot.operations.cli.main`` in this process) on a real database:
a printed key signs in as its member, a list never shows a secret, a revoked key stops working, local web users
get negative ids that the credit commands accept, and a bad command line is one line with exit 2."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.application.api_keys import ApiKeyIdentity, ApiKeys
from bot.operations.cli import main
from bot.storage.store import Store

pytestmark = pytest.mark.usefixtures("in_process_cli")  # bot.operations.cli.main runs here: see tests/conftest.py

KEY = re.compile(r"\bib_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\b")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The owner's working folder with its own data folder; every log line is written (DEBUG)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IMAGINE_MODEL", "tiny")
    monkeypatch.setenv("IMAGINE_LOG_LEVEL", "DEBUG")
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``python -m bot ARGS`` (argparse's exit included); never a traceback."""
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


def created_key(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    """``apikey create ARGS``: the one key it printed, and all it printed; the key is in no log line."""
    code, out, err = cli(capsys, "apikey", "create", *args)
    assert code == 0, err
    [key] = KEY.findall(out)
    assert key not in err and key.split("_", 2)[2] not in err
    return key, out


def authenticate(folder: Path, key: str) -> ApiKeyIdentity | None:
    """Who ``key`` signs in as, asked of the core's ApiKeys on the command's own database."""

    async def ask() -> ApiKeyIdentity | None:
        store = await Store.open(folder / "data" / "imagine.db")
        try:
            return await ApiKeys(store).authenticate(key)
        finally:
            await store.close()

    return asyncio.run(ask())


@pytest.mark.parametrize(
    ("env", "args", "guild_id", "address"),
    [
        ({}, ("--guild", "55"), 55, "Web UI: http://127.0.0.1:7860"),
        ({"IMAGINE_WEB__RULES_GUILD_ID": "77"}, (), 77, "Web UI: http://127.0.0.1:7860"),
        ({"IMAGINE_WEB__HOST": "::1", "IMAGINE_WEB__PORT": "8000"}, (), 0, "Web UI: http://[::1]:8000"),
        ({"IMAGINE_WEB__PUBLIC_URL": "https://art.example.org/"}, (), 0, "Web UI: https://art.example.org\n"),
    ],
)
def test_a_created_key_signs_in_as_its_member(
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    args: tuple[str, ...],
    guild_id: int,
    address: str,
) -> None:
    """The printed key authenticates as the member with --guild (default [web] rules_guild_id), and the text says
    it is shown once, how to send it and where the web UI is."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    key, out = created_key(capsys, "1234", "--label", "laptop", *args)
    assert authenticate(folder, key) == ApiKeyIdentity(key.split("_")[1], 1234, guild_id, moderator=False)
    assert "shown only once" in out
    assert "Authorization: Bearer <key>" in out and "password of HTTP Basic" in out
    assert address in out
    assert key in out.splitlines()  # alone on its line, for scripts


def test_a_moderator_key_acts_as_a_moderator_of_its_server(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--moderator makes a key whose web actor may moderate its server; without it the actor may not."""
    moderator, _ = created_key(capsys, "5", "--guild", "9", "--moderator")
    member, _ = created_key(capsys, "6", "--guild", "9")
    identity = authenticate(folder, moderator)
    assert identity is not None and identity.moderator
    actor = identity.actor()
    assert actor.is_web and actor.guild_id == 9 and actor.roles is not None and actor.roles.manage_guild
    plain = authenticate(folder, member)
    assert plain is not None and not plain.moderator and plain.actor().roles.manage_guild is False  # type: ignore[union-attr]


def test_list_shows_keys_but_never_a_secret(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each key's id, member (a local user by name), server, label and flags are listed; no key text is."""
    first, _ = created_key(capsys, "1234", "--guild", "55", "--label", "laptop")
    second, _ = created_key(capsys, "--local", "alice", "--moderator")
    code, out, _ = cli(capsys, "apikey", "list")
    assert code == 0
    assert not KEY.search(out)
    for key in (first, second):
        assert key.split("_")[1] in out and key.split("_", 2)[2] not in out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["KEY", "ID", "MEMBER"]
    laptop = next(line for line in lines if "laptop" in line)
    assert "1234" in laptop and "55" in laptop and " no " in laptop
    alice = next(line for line in lines if "alice (-1)" in line)
    assert " yes " in alice
    code, out, _ = cli(capsys, "apikey", "list", "-1")
    assert code == 0 and "alice (-1)" in out and "laptop" not in out


def test_a_revoked_key_stops_working(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """revoke: the key no longer authenticates, is listed only with --all, and a second revoke fails (exit 1)."""
    key, _ = created_key(capsys, "1234")
    key_id = key.split("_")[1]
    code, out, _ = cli(capsys, "apikey", "revoke", key_id)
    assert code == 0 and f"key {key_id} of member 1234 revoked" in out
    assert authenticate(folder, key) is None
    code, out, _ = cli(capsys, "apikey", "list")
    assert code == 0 and key_id not in out and "no active keys" in out
    code, out, _ = cli(capsys, "apikey", "list", "1234", "--all")
    assert code == 0 and key_id in out
    code, out, err = cli(capsys, "apikey", "revoke", key_id)
    assert (code, out) == (1, "")
    assert f"error: key {key_id} was already revoked" in err


def test_a_local_user_gets_a_negative_id_the_credit_commands_accept(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--local NAME makes the web user once (id -1, then -2 for the next), its key signs in as it, and credits and
    tier take its negative id."""
    key, out = created_key(capsys, "--local", "alice")
    assert "made the local web user alice (id -1)" in out
    identity = authenticate(folder, key)
    assert identity is not None and identity.user_id == -1
    again, out = created_key(capsys, "--local", "alice")
    assert "made the local web user" not in out
    assert authenticate(folder, again) == ApiKeyIdentity(again.split("_")[1], -1, 0)
    created_key(capsys, "--local", "bob.k")
    created_key(capsys, "-2")  # an existing local user by id
    code, out, _ = cli(capsys, "apikey", "users")
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [["-1", "alice"], ["-2", "bob.k"]]
    assert out.splitlines()[1].split()[-1] == "2" and out.splitlines()[2].split()[-1] == "2"  # active keys
    code, out, err = cli(capsys, "credits", "grant", "-1", "5", "--reason", "x")
    assert code == 0, err
    assert out.startswith("member -1: balance ")
    code, out, err = cli(capsys, "tier", "set", "-1", "supporter")
    assert code == 0, err
    assert out.startswith("member -1: tier supporter")


def test_nothing_yet_is_said_without_creating_a_database(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """list and users on a new install answer and create no database."""
    assert cli(capsys, "apikey", "list")[:2] == (0, "no keys yet\n")
    assert cli(capsys, "apikey", "users")[:2] == (0, "no local web users yet\n")
    assert not (folder / "data" / "imagine.db").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("apikey", "create"), "name the key's member: apikey create USER_ID, or apikey create --local NAME"),
        (("apikey", "create", "5", "--local", "bob"), "name one member: USER_ID or --local NAME, not both"),
        (("apikey", "create", "0"), "0 is the console's own id, not a member"),
        (("apikey", "create", "-3"), "there is no local web user with id -3"),
        (("apikey", "create", "--local", "b ob"), "--local 'b ob' is not a user name"),
        (("apikey", "create", "--local=-x"), "--local '-x' is not a user name"),
        (("apikey", "create", "5", "--guild", "x"), "'x' is not a server id"),
        (("apikey", "create", "5", "--guild", "-1"), "-1 is not a server id"),
        (("apikey", "create", "5", "--label", "x" * 101), "--label: a key's label has at most 100 characters"),
        (("apikey", "create", "abc"), "'abc' is not a user id (a Discord user id, or a local web user's id"),
        (("apikey", "revoke", "zzz"), "'zzz' is not a key id (12 hex digits"),
        (("apikey", "revoke", "ib_0123456789ab_" + "x" * 40), "that is not a key id"),
        (("apikey", "revoke", "0123456789ab"), "there is no key 0123456789ab"),
        (("apikey", "list", "1.5"), "'1.5' is not a user id"),
        (("apikey", "frob"), "invalid choice: 'frob'"),
        (("credits", "show", "-99999999999999999999"), "is not a user id (a Discord user id, or a local web user's"),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(
    folder: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    """Each mistake is one error line, exit 2, nothing on stdout and no key made."""
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert out == ""
    [line] = [line for line in err.splitlines() if "error: " in line]
    assert fragment in line
    assert not KEY.search(err)
    if (folder / "data" / "imagine.db").exists():
        assert cli(capsys, "apikey", "list", "--all")[1].startswith("no keys")
