"""The chaos benchmark in reduced form: SIGKILL an engine (of one, or of two serving one queue) and the bot under
load; nothing is lost."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.ahead import Command, Ran, ahead, child_environment

ROOT = Path(__file__).resolve().parents[2]


def _chaos(_folder: Path, params: dict[str, object]) -> list[Command]:
    arguments = ["--engine-kills", "2", "--bot-kills", "1", "--members", "4", "--engines", str(params["engines"])]
    return [Command([sys.executable, "-m", "bench.chaos", *arguments], ROOT, child_environment(), timeout=600)]


@pytest.mark.slow
@pytest.mark.parametrize("engines", [1, 2])
@ahead(_chaos)
def test_engine_and_bot_kills_lose_no_job_and_no_credit(ran: Ran, engines: int) -> None:
    """Two engine kills and one bot kill under load, with one engine or two: every job ends, every balance equals
    its ledger."""
    (completed,) = ran.results
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert result["engines"] == engines
    assert result["engine_kills"] == 2
    assert result["bot_kills"] == 1
    assert result["jobs_accepted"] > 0
    assert result["jobs_lost"] == 0
    assert result["ledger_drift"] == 0
    assert result["db_check_problems"] == 0
    assert result["jobs_completed"] + result["jobs_refunded"] == result["jobs_accepted"]
