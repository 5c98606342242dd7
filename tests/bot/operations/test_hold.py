"""``run --hold-on-config-error``: a configuration error is said once and the process waits instead of exiting, so
a container's restart policy (which cannot tell exit codes apart) does not restart it in a loop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ahead import Command, Interaction, Ran, ahead, child_environment

ROOT = Path(__file__).resolve().parents[3]
FAKE_TOKEN = "ODk5.fake-token-for-tests." + "x" * 27
HOLDING = "waiting until stopped (not exiting, so nothing restarts the bot in a loop)"


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return child_environment(**{"IMAGINE_DATA_DIR": str(tmp_path / "data"), **extra})


def _configure(tmp_path: Path, case: str) -> tuple[dict[str, str], str]:
    """The environment of one configuration mistake, and a fragment of its one-line error."""
    if case == "no-token":
        return _environment(tmp_path), "error: no Discord bot token is configured: put IMAGINE_DISCORD_TOKEN=<token>"
    if case == "config-typo":
        (tmp_path / "bot.toml").write_text('modle = "tiny"\n', encoding="utf-8")
        environment = _environment(tmp_path, IMAGINE_CONFIG=str(tmp_path / "bot.toml"))
        return environment, "bot.toml: unknown key 'modle' (did you mean 'model'?)"
    (tmp_path / "taken").write_text("a file", encoding="utf-8")
    environment = _environment(tmp_path, IMAGINE_DISCORD_TOKEN=FAKE_TOKEN, IMAGINE_DATA_DIR=str(tmp_path / "taken"))
    return environment, f"cannot write {tmp_path}/taken ({tmp_path}/taken is a file, not a folder)"


@dataclass
class Held:
    """What a held ``run`` did: its first line, whether it still ran a second later (and what else it said if not),
    its exit code, the seconds from the stop signal to the exit, and what it wrote after the first line; and the
    fragment its configuration mistake's line must hold."""

    expected: str
    first: str
    running_after_a_second: bool
    said_before_exiting: str
    returncode: int | None
    seconds: float
    out: str
    rest: str


def _held_then_stopped(folder: Path, environment: dict[str, str], expected: str, stop: int) -> Held:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--hold-on-config-error"],
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # blocks until the error is out
        time.sleep(1.0)
        if process.poll() is not None:
            return Held(expected, first, False, process.stderr.read(), process.returncode, 0.0, "", "")
        process.send_signal(stop)
        started = time.monotonic()
        out, rest = process.communicate(timeout=10)
        seconds = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return Held(expected, first, True, "", process.returncode, seconds, out, rest)


def _hold_then_run_without(folder: Path, params: dict[str, Any]) -> list[Command | Interaction]:
    environment, fragment = _configure(folder, params["case"])
    return [
        lambda: _held_then_stopped(folder, environment, fragment, params["stop"]),
        # the documented exit code stays for everyone else: 2 at once
        Command([sys.executable, "-m", "bot", "run"], folder, environment, timeout=60),
    ]


@ahead(_hold_then_run_without)
@pytest.mark.parametrize(
    ("case", "stop"),
    [("no-token", signal.SIGTERM), ("config-typo", signal.SIGTERM), ("unwritable-data", signal.SIGINT)],
)
def test_a_configuration_error_is_said_once_then_the_bot_waits(ran: Ran, case: str, stop: int) -> None:
    """One line, still running a second later with nothing more said, and a prompt exit 0 when stopped; without
    the option the same mistake exits 2."""
    held, without = ran.results
    assert held.running_after_a_second, held.first + held.said_before_exiting
    assert held.returncode == 0
    assert held.seconds < 2.0
    assert held.expected in held.first and held.first.rstrip("\n").endswith(HOLDING), held.first
    assert held.rest == "" and held.out == ""  # said once, nothing after
    assert not (ran.folder / "data" / "heartbeat.json").exists()
    assert without.returncode == 2
    assert HOLDING not in without.stderr and "Traceback" not in without.stderr


def test_an_earlier_runs_heartbeat_is_cleared(tmp_path: Path) -> None:
    """A held bot serves nothing: a heartbeat left by an earlier run must not keep it looking healthy."""
    environment, _ = _configure(tmp_path, "no-token")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "heartbeat.json").write_text("{}", encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert not (tmp_path / "data" / "heartbeat.json").exists()
