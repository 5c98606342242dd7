"""``python -m bot blend`` and ``generate --image-prompt FILE --iw X``: rendered through a real engine on the tiny model
and its tiny IP-Adapter; every refusal comes before any database or engine."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.ahead import Command, Interaction, Ran, ahead
from tests.bot.operations.test_cli import cli_command


def _pictures(folder: Path) -> None:
    Image.new("RGB", (64, 48), "red").save(folder / "a.png")
    Image.new("RGB", (48, 48), "blue").save(folder / "b.jpg")
    (folder / "notes.png").write_text("not an image")


def _blend(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    _pictures(folder)
    return [
        cli_command(
            "blend",
            "a.png",
            "b.jpg",
            "--dimensions",
            "portrait",
            "-o",
            "blend.png",
            cwd=folder,
            env={"IMAGINE_MODEL": "tiny"},
        )
    ]


@pytest.mark.slow
@ahead(_blend)
def test_blend_renders_a_grid_of_the_chosen_shape(ran: Ran) -> None:
    """Two files, portrait: exit 0, four image paths, a 2×2 grid of 48×72 images, one blend job charged to the
    console with both images as its prompts."""
    (completed,) = ran.results
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.split()) == 4
    with Image.open(ran.folder / "blend.png") as grid:
        assert grid.size == (2 * 48, 2 * 72)
    with sqlite3.connect(ran.folder / "data" / "imagine.db") as db:
        [(kind, status, params)] = db.execute("SELECT kind, status, params FROM jobs").fetchall()
    assert (kind, status) == ("blend", "completed")
    values = json.loads(params)
    assert values["prompt"] == "" and values["ip_adapter"] == "tiny-ip-adapter" and len(values["image_prompts"]) == 2


def _generate_with_image_prompt(folder: Path, _params: dict[str, object]) -> list[Command | Interaction]:
    _pictures(folder)
    args = ("generate", "a red fox --seed 3", "--image-prompt", "a.png", "--iw", "0.8", "-o", "fox.png")
    return [cli_command(*args, cwd=folder, env={"IMAGINE_MODEL": "tiny"})]


@pytest.mark.slow
@ahead(_generate_with_image_prompt)
def test_generate_takes_an_image_prompt_and_its_weight(ran: Ran) -> None:
    (completed,) = ran.results
    assert completed.returncode == 0, completed.stderr
    assert (ran.folder / "fox.png").is_file()
    with sqlite3.connect(ran.folder / "data" / "imagine.db") as db:
        [(kind, params)] = db.execute("SELECT kind, params FROM jobs").fetchall()
    values = json.loads(params)
    assert (kind, values["prompt"], values["image_weight"]) == ("imagine", "a red fox", 0.8)
    [stored] = values["image_prompts"]
    assert Path(stored).parent.name == "uploads"


def _refused(folder: Path, params: dict[str, Any]) -> list[Command | Interaction]:
    _pictures(folder)
    env = {"IMAGINE_MODEL": params.get("model", "tiny"), "IMAGINE_DATA_DIR": str(folder / "data")}
    return [cli_command(*params["args"], cwd=folder, env=env)]


@ahead(_refused)
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("blend", "a.png"), "/blend mixes 2 to 5 images; 1 were given"),
        (("blend", "a.png", "b.jpg", "a.png", "b.jpg", "a.png", "b.jpg"), "/blend mixes 2 to 5 images; 6 were given"),
        (("blend", "a.png", "notes.png"), "notes.png: the attachment is not an image this bot can read"),
        (("blend", "a.png", "missing.png"), "missing.png: the file does not exist"),
        (("blend", "a.png", "b.jpg", "--dimensions", "wide"), "invalid choice: 'wide'"),
        (("generate", "a fox", "--iw", "0.5"), "--iw needs an image prompt"),
        (("generate", "a fox", "--image-prompt", "a.png", "--iw", "3"), "--iw X with X a number from 0 to 2"),
        (("generate", "a fox", "--image-prompt", "notes.png"), "--image-prompt notes.png: the attachment is not"),
        (("generate", "https://evil.example/x.png a fox"), "evil.example is not Discord's file server"),
    ],
)
def test_refusals_come_before_any_work(ran: Ran, args: tuple[str, ...], fragment: str) -> None:
    """Exit 2 with one line naming what to change; no database, no engine, nothing stored."""
    (completed,) = ran.results
    assert completed.returncode == 2, completed.stderr
    assert fragment in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (ran.folder / "data" / "imagine.db").exists()
    assert not (ran.folder / "data" / "uploads").exists()


@ahead(_refused)
@pytest.mark.parametrize("args", [("blend", "a.png", "b.jpg")])
@pytest.mark.parametrize("model", ["tiny-turbo"])
def test_a_model_without_an_adapter_is_refused(ran: Ran, args: tuple[str, ...], model: str) -> None:
    """The default model is an SD2 one, for which no IP-Adapter is configured: refused, naming what to add."""
    (completed,) = ran.results
    assert completed.returncode == 2
    assert "no IP-Adapter for the sd2 family is configured" in completed.stderr
    assert not (ran.folder / "data" / "imagine.db").exists()
