"""README.md stays true: its configuration examples load, and the commands it names exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bot.operations.cli import build_parser
from config.settings import load_settings

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", TEXT, flags=re.DOTALL)
COMMANDS = sorted(set(re.findall(r"`python -m bot ([a-z][^`]*)`", TEXT)))


def test_readme_has_examples() -> None:
    """The owner's guide shows configuration examples and commands (the tests below would pass on none)."""
    assert len(TOML_BLOCKS) >= 2
    assert len(COMMANDS) >= 8


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=[f"toml{i}" for i in range(len(TOML_BLOCKS))])
def test_readme_toml_examples_load(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each `config/bot.toml` example in README is a valid configuration."""
    toml = tmp_path / "bot.toml"
    toml.write_text(block, encoding="utf-8")
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    load_settings(_env_file=None)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_commands_parse(command: str) -> None:
    """Each `python -m bot ...` the README names is accepted by the command line (placeholders filled in)."""
    words = shlex.split(re.sub(r"\$\([^)]*\)", "x", command))  # a shell substitution is one word
    words = [re.sub(r"^[A-Z_]+$", "1", word) for word in words]  # USER_ID, NAME, PATH
    parser = build_parser()
    if len(words) == 1:  # a command group named on its own (`python -m bot credits`)
        choices = next(action.choices for action in parser._actions if action.dest == "command")
        assert words[0] in choices
        return
    parser.parse_args(words)
