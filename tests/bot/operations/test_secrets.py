"""The Discord token never appears in logs, tracebacks or doctor's report."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from bot.operations.logs import REDACTED, RedactSecrets
from tests.bot.operations.test_cli import run_cli

TOKEN = "imagine-test-secret-" + "5f3a9c" * 8


def test_log_lines_and_tracebacks_are_redacted() -> None:
    """A message, its arguments and an exception text that contain the token are all scrubbed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([TOKEN]))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connecting with %s", TOKEN)
        try:
            raise RuntimeError(f"login failed for {TOKEN}")
        except RuntimeError:
            logger.exception("could not log in")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert TOKEN not in text
    assert text.count(REDACTED) >= 2
    assert "RuntimeError" in text


def test_doctor_never_prints_the_token(tmp_path: Path) -> None:
    """doctor reports the settings without the token."""
    completed = run_cli(
        "doctor", "--no-probe", cwd=tmp_path, env={"IMAGINE_MODEL": "tiny", "IMAGINE_DISCORD_TOKEN": TOKEN}
    )
    assert TOKEN not in completed.stdout + completed.stderr
    assert TOKEN[:20] not in completed.stdout + completed.stderr
