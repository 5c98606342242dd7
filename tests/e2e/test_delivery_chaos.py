"""The delivery chaos benchmark in reduced form: the bot is SIGKILLed at a random moment and exactly between a
job's end and its post, on simcord, and every ended job is still posted once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.ahead import Command, Ran, ahead, child_environment

ROOT = Path(__file__).resolve().parents[2]


def _delivery_chaos(_folder: Path, _params: dict[str, object]) -> list[Command]:
    arguments = [
        sys.executable,
        "-m",
        "bench.delivery_chaos",
        "--random-kills",
        "1",
        "--completion-kills",
        "1",
        "--members",
        "3",
        "--interval",
        "0.6",
        "--max-random-delay",
        "3",
        "--final-load-s",
        "2",
    ]
    return [Command(arguments, ROOT, child_environment(), timeout=600)]


@pytest.mark.slow
@ahead(_delivery_chaos)
def test_kills_between_completion_and_post_lose_and_repeat_no_result(ran: Ran) -> None:
    """One random kill and one kill at a job's completion under load: nothing lost, nothing posted twice."""
    (completed,) = ran.results
    assert completed.stdout.strip(), completed.stderr[-4000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == 0, completed.stdout + completed.stderr[-4000:]
    assert result["random_kills"] == 1
    assert result["completion_kills"] == 1
    assert result["killed_at_completion_delivered"] == 1  # the job the kill cut off was posted by the next bot
    assert result["jobs_accepted"] > 0
    assert result["results_posted"] >= result["jobs_completed"] + result["jobs_refunded"]
    assert result["jobs_lost"] == 0
    assert result["ledger_drift"] == 0
    assert result["db_check_problems"] == 0
    assert result["results_undelivered"] == 0
    assert result["results_duplicated"] == 0
    assert result["deliveries_pending"] == 0
