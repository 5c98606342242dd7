"""``python -m bot generate --control FILE --control-mode MODE --cw X``: a ControlNet grid from the shell, and every
refusal (a bad file, a bad weight, depth without an estimator) before anything renders."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bot.operations.cli import build_parser
from bot.operations.generate_control import with_control
from bot.requests.request_options import TaskOptions
from tests.ahead import Command, Ran, ahead
from tests.bot.operations.test_cli import cli_command

BAD = Path(__file__).resolve().parents[2] / "data" / "bad"
TINY = {"IMAGINE_MODEL": "tiny"}


def test_the_control_arguments_reach_the_request() -> None:
    """--control, --control-mode and --cw are parsed into the generate request's options."""
    args = build_parser().parse_args(
        ["generate", "a fox", "--control", "e.png", "--control-mode", "lineart", "--cw", ".5"]
    )
    options = with_control(TaskOptions(args.model, args.image, args.mask, args.strength, tuple(args.sweep)), args)
    assert (options.control, options.control_mode, options.control_weight) == (Path("e.png"), "lineart", 0.5)


def _generate_with_control(folder: Path, _params: dict[str, object]) -> list[Command]:
    edges = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(edges).ellipse((8, 8, 56, 56), outline="white", width=3)
    edges.save(folder / "edges.png")
    return [
        cli_command(
            "generate",
            "a red fox --seed 5",
            "--control",
            "edges.png",
            "--control-mode",
            "raw",
            "--cw",
            "0.7",
            "-o",
            "grid.png",
            cwd=folder,
            env=TINY,
        )
    ]


@pytest.mark.slow
@ahead(_generate_with_control)
def test_generate_renders_a_controlnet_grid(ran: Ran) -> None:
    """Four images through the ControlNet; the grid's parameters name it; the job is a control job."""
    (completed,) = ran.results
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.split()) == 4
    with Image.open(ran.folder / "grid.png") as grid:
        assert 'ControlNet 0: "Module: raw, Model: tiny-controlnet, Weight: 0.7"' in grid.info["parameters"]
    with closing(sqlite3.connect(ran.folder / "data" / "imagine.db")) as db:
        assert db.execute("SELECT kind, status FROM jobs").fetchall() == [("control", "completed")]


REFUSALS = (
    (("--control", str(BAD / "bomb.png")), "far too many pixels"),
    (("--control", "missing.png"), "--control missing.png"),
    (("--control", str(BAD / "empty.png"), "--cw", "2.5"), "`--cw 2.5` is out of range"),
    (("--control", str(BAD / "empty.png"), "--control-mode", "depth"), "needs a depth estimator"),
    (("--cw", "1"), "--cw needs a control image"),
)


def _refused(folder: Path, _params: dict[str, object]) -> list[Command]:
    return [cli_command("generate", "a fox", *extra, cwd=folder, env=TINY) for extra, _fragment in REFUSALS]


@ahead(_refused)
def test_generate_refuses_bad_control_requests_before_rendering(ran: Ran) -> None:
    """Exit 2 with what to change, a flag refused before the file is even read; no database is made."""
    for (_extra, fragment), completed in zip(REFUSALS, ran.results, strict=True):
        assert completed.returncode == 2, completed.stderr
        assert fragment in completed.stderr
        assert "Traceback" not in completed.stderr
    assert not (ran.folder / "data" / "imagine.db").exists()
