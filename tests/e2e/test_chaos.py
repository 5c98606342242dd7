"""The chaos benchmark in reduced form: SIGKILL the engine and the bot under load; nothing is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_engine_and_bot_kills_lose_no_job_and_no_credit() -> None:
    """Two engine kills and one bot kill under load: every job ends, every balance equals its ledger."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINE_")}
    completed = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--engine-kills", "2", "--bot-kills", "1", "--members", "4"],
        cwd=ROOT,
        env={**environment, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert result["engine_kills"] == 2
    assert result["bot_kills"] == 1
    assert result["jobs_accepted"] > 0
    assert result["jobs_lost"] == 0
    assert result["ledger_drift"] == 0
    assert result["db_check_problems"] == 0
    assert result["jobs_completed"] + result["jobs_refunded"] == result["jobs_accepted"]
