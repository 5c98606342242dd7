"""``python -m bot generate`` with the image safety check on: the command line has no age-restricted channel, so its
jobs are checked; a flagged grid is written and said to be flagged (spoiler), or the job fails and nothing is
printed but why (withhold)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.operations.exit_codes import EXIT_FAILED, EXIT_OK
from tests.ahead import Command, Ran, ahead, child_environment
from tests.builders.tiny_safety import FLAG_ALL, build_tiny_safety_checker

ACTIONS = ("spoiler", "withhold")


def _generate_with_each_action(folder: Path, _params: dict[str, object]) -> list[Command]:
    classifier = build_tiny_safety_checker(folder / "flag-all", threshold=FLAG_ALL)
    commands = []
    for action in ACTIONS:
        environment = child_environment(
            IMAGINE_MODEL="tiny",
            IMAGINE_DATA_DIR=str(folder / action),
            IMAGINE_SAFETY__ENABLED="true",
            IMAGINE_SAFETY__CLASSIFIER=str(classifier),
            IMAGINE_SAFETY__ACTION=action,
        )
        args = [sys.executable, "-m", "bot", "generate", "a red fox --seed 7"]
        commands.append(Command(args, folder, environment, timeout=300))
    return commands


@pytest.mark.slow
@ahead(_generate_with_each_action)
def test_generate_checks_its_images(ran: Ran) -> None:
    """spoiler: exit 0, the four paths, and a line naming the flagged images; withhold: exit 1 with the reason, no
    path printed and no image kept."""
    spoiler, withhold = ran.results
    assert spoiler.returncode == EXIT_OK, spoiler.stderr
    assert len(spoiler.stdout.split()) == 4
    assert "flagged by the image safety check: images 1, 2, 3 and 4 (NSFW content)" in spoiler.stderr
    assert withhold.returncode == EXIT_FAILED, withhold.stderr
    assert "withheld by the image safety check" in withhold.stderr and withhold.stdout == ""
    assert not list((ran.folder / "withhold" / "images").rglob("*.png"))
