"""docs/architecture.md stays true (every module it names exists, every group of bot/ is in its picture), and
modules stay small."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def test_every_named_module_exists() -> None:
    """A path like `bot/requests/prompt.py` or `engine/protocol.py::batch_key` names a file that is there."""
    named = set(re.findall(r"(?<![\w/])((?:bot|cogs|engine|config)/[\w/]+\.py)", DOC))
    assert len(named) > 20
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_group_of_the_core_is_shown() -> None:
    """Each package under bot/ appears in the picture, so a new room cannot be left out of the map."""
    groups = sorted(path.parent.name for path in (ROOT / "bot").glob("*/__init__.py"))
    assert groups
    assert all(f"{group}/" in DOC for group in groups), groups


def test_the_readme_points_here() -> None:
    """README's layout paragraph links the architecture page."""
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()


def test_no_module_over_400_lines() -> None:
    """Small modules: none of bot/, cogs/, engine/ or config/ grows past 400 lines."""
    long = {
        str(path.relative_to(ROOT)): count
        for room in ("bot", "cogs", "engine", "config", "web")
        for path in (ROOT / room).rglob("*.py")
        if (count := len(path.read_text().splitlines())) > 400
    }
    assert not long, f"split these modules: {long}"
