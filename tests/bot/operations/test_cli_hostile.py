"""Hostile requests through ``python -m bot generate``: each is refused in one line that says what to change, exit 2,
before any file is read, any database is created or any engine starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.operations.cli import main
from tests.hostile import PROMPTS, SWEEPS

pytestmark = pytest.mark.usefixtures("in_process_cli")  # bot.operations.cli.main runs here: see tests/conftest.py

BAD = Path(__file__).resolve().parents[2] / "data" / "bad"

OWNER_FRAGMENTS = {"a fox --model sdxl": "is not downloaded on this server yet"}
"""The console may name any registry model, so a hub model is refused for not being on disk."""


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGINE_MODEL", "tiny")
    monkeypatch.setenv("IMAGINE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _refused(capsys: pytest.CaptureFixture[str], data_dir: Path, args: list[str], fragment: str) -> None:
    code = main(["generate", *args])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not (data_dir / "imagine.db").exists()  # refused before the database was even opened
    assert not (data_dir / "uploads").exists() or not any((data_dir / "uploads").rglob("*.*"))


@pytest.mark.parametrize(("prompt", "fragment"), PROMPTS, ids=[f"prompt{i}" for i in range(len(PROMPTS))])
def test_hostile_prompts(capsys: pytest.CaptureFixture[str], data_dir: Path, prompt: str, fragment: str) -> None:
    """The Discord suite's prompts, through the shell."""
    _refused(capsys, data_dir, [prompt], OWNER_FRAGMENTS.get(prompt, fragment))


@pytest.mark.parametrize(("prompt", "axes", "fragment"), SWEEPS, ids=[f"sweep{i}" for i in range(len(SWEEPS))])
def test_hostile_sweeps(
    capsys: pytest.CaptureFixture[str], data_dir: Path, prompt: str, axes: tuple[str, ...], fragment: str
) -> None:
    """Every swept value past its flag's limit, through ``--sweep``."""
    _refused(capsys, data_dir, [prompt, *(arg for axis in axes for arg in ("--sweep", axis))], fragment)


def test_four_sweep_axes(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    """The shell allows more --sweep flags than Discord's x, y, z: a fourth axis is refused."""
    axes = ["cfg=3", "steps=2", "seed=1", "sampler=euler"]
    _refused(capsys, data_dir, ["a lamp", *(arg for axis in axes for arg in ("--sweep", axis))], "at most 3 axes")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("ztxt_bomb.png", "oversized compressed metadata"),
        ("iccp_bomb.png", "oversized compressed metadata"),
        ("apng.png", "animated images are not supported"),
        ("animated.webp", "animated images are not supported"),
        ("one_pixel.png", "at least 32 pixels"),
        ("ratio_1_to_100.png", "longer than 4:1"),
        ("truncated.jpg", "damaged or truncated"),
    ],
)
def test_crafted_images(
    capsys: pytest.CaptureFixture[str], data_dir: Path, tmp_path: Path, name: str, fragment: str
) -> None:
    """A crafted --image is refused by the shell in one line, naming the file; nothing is stored."""
    code = main(["generate", "a fox", "--image", str(BAD / name)])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and name in lines[0] and fragment in lines[0], captured.err
    assert "Traceback" not in captured.err
    uploads = data_dir / "uploads"
    assert not uploads.exists() or not any(path.is_file() for path in uploads.rglob("*"))
