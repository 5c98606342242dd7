"""``python -m bot describe IMAGE``: four prompts printed through a real engine; refusals before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.ahead import Command, Interaction, Ran, ahead
from tests.bot.operations.test_cli import cli_command


def _environment(folder: Path, source: str = "tiny:blip") -> dict[str, str]:
    return {"IMAGINE_MODEL": "tiny", "IMAGINE_DATA_DIR": str(folder / "data"), "IMAGINE_DESCRIBE__SOURCE": source}


def _describe_twice(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    Image.new("RGB", (160, 90), "navy").save(folder / "wide.png")
    return [cli_command("describe", "wide.png", cwd=folder, env=_environment(folder)) for _ in range(2)]


@pytest.mark.slow
@ahead(_describe_twice)
def test_describe_prints_four_prompts_for_the_image(ran: Ran) -> None:
    """Four distinct prompts, one per line, each ending with the image's --ar; the console is not charged."""
    for completed in ran.results:
        assert completed.returncode == 0, completed.stderr
        lines = completed.stdout.splitlines()
        assert len(lines) == 4 and len(set(lines)) == 4
        assert all(line.endswith(" --ar 16:9") for line in lines)
    assert "job 1: 4 suggestions" in ran.results[0].stderr
    assert "job 2: 4 suggestions" in ran.results[1].stderr


def _refused(folder: Path, params: dict[str, Any]) -> list[Command | Interaction]:
    (folder / "notes.png").write_text("not a picture")
    Image.new("RGB", (8, 8)).save(folder / "ok.png")
    env = _environment(folder, params["source"])
    return [cli_command("describe", params["image"], cwd=folder, env=env)]


@ahead(_refused)
@pytest.mark.parametrize(
    ("source", "image", "fragment"),
    [
        ("Salesforce/blip-image-captioning-base", "ok.png", "python -m engine.describe pull Salesforce/blip"),
        ("", "ok.png", "/describe is turned off on this server"),
        ("tiny:blip", "missing.png", "missing.png: the file does not exist"),
        ("tiny:blip", "notes.png", "notes.png: the attachment is not an image this bot can read"),
    ],
)
def test_refusals_come_before_any_work(ran: Ran, source: str, image: str, fragment: str) -> None:
    """One line, exit 2, no database created and no engine started."""
    (completed,) = ran.results
    assert completed.returncode == 2, completed.stderr
    assert fragment in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (ran.folder / "data" / "imagine.db").exists()
