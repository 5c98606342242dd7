"""``python -m bot run`` serves every configured surface from one process: without a Discord token it serves the
web UI and APIs (and says plainly that Discord is off); an address it cannot listen on is one line, exit 2."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.ahead import child_environment

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def web_environment(tmp_path: Path, port: int) -> dict[str, str]:
    return child_environment(
        IMAGINE_DATA_DIR=str(tmp_path / "data"),
        IMAGINE_MODEL="tiny",
        IMAGINE_WEB__ENABLED="true",
        IMAGINE_WEB__PORT=str(port),
    )


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_without_a_token_run_serves_the_web_and_stops_cleanly(tmp_path: Path, stop: signal.Signals) -> None:
    """The web answers (its OpenAPI schema, a JSON 401 without a key); the log says Discord is off and how to turn
    it on; Ctrl-C or SIGTERM (``systemctl stop``) closes it cleanly: exit 0, no traceback, the engine stopped."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=web_environment(tmp_path, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "Application startup complete" in line:
                break
        assert any(f"http://127.0.0.1:{port}" in line for line in lines), "".join(lines)
        status, body = get(f"http://127.0.0.1:{port}/api/openapi.json")
        assert status == 200 and "/api/v1/jobs" in json.loads(body)["paths"]
        status, body = get(f"http://127.0.0.1:{port}/api/v1/me")
        assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"
        process.send_signal(stop)
        _out, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = "".join(lines) + rest
    assert "Discord is off: no bot token is configured (IMAGINE_DISCORD_TOKEN" in log
    assert "Traceback" not in log
    assert process.returncode == 0


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Before any engine starts: what is wrong and what to change."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        completed = subprocess.run(
            [sys.executable, "-m", "bot", "run"],
            cwd=tmp_path,
            env=web_environment(tmp_path, port),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"error: the web server cannot listen on 127.0.0.1:{port}"), completed.stderr
    assert "set web.port to a free port" in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data" / "imagine.db").exists()


def test_with_neither_surface_run_says_how_to_add_the_token(tmp_path: Path) -> None:
    """No token and the web off: the message of old, exit 2."""
    environment = child_environment(IMAGINE_DATA_DIR=str(tmp_path / "data"), IMAGINE_WEB__ENABLED="false")
    completed = subprocess.run(
        [sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("error: no Discord bot token is configured")
