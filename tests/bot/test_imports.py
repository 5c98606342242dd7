"""The bot stays light: importing bot/ and cogs/ never imports torch or diffusers, nor Ray (an optional extra)."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import bot
import cogs

ENGINE_MODULES_THE_BOT_USES = [
    "engine.protocol",
    "engine.process",
    "engine.metadata",
    "engine.grid",
    "engine.png_encoding",
    "engine.canvas",
    "engine.model_sources",
    "engine.prompt_syntax",
    "engine.samplers",
    "engine.ray_actor",
    "config",
]
RAY_MODULES = {"engine/ray_actor.py", "bot/running/ray_engine.py", "bot/running/ray_engines.py"}
"""The only modules of the product that import ray (inside functions)."""


def bot_side_modules() -> list[str]:
    """Every module of bot/ and cogs/, found on disk (a new module is covered without editing a list)."""
    found = [
        module.name
        for package in (bot, cogs)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")
        if not module.name.endswith(".__main__")
    ]
    return ["bot", "cogs", *sorted(found), *ENGINE_MODULES_THE_BOT_USES]


def test_discovery_finds_the_core_and_the_cogs() -> None:
    """The discovered list is not empty by accident."""
    modules = bot_side_modules()
    assert {
        "bot.application.service",
        "bot.requests.preparation",
        "bot.requests.uploads",
        "cogs.imagine",
        "cogs.presenter",
    } <= set(modules)


def test_bot_and_cogs_do_not_import_torch_or_diffusers() -> None:
    """A fresh interpreter imports every bot-side module and finds no torch, diffusers, transformers or ray."""
    code = (
        "import importlib, sys\n"
        f"for name in {bot_side_modules()!r}: importlib.import_module(name)\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'accelerate', 'ray') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == ""


def test_only_the_ray_modules_import_ray() -> None:
    """No module of the product but the Ray backend's names ray, even inside a function."""
    root = Path(bot.__file__).parent.parent
    naming = re.compile(r"^\s*(import ray\b|from ray\b)", re.MULTILINE)
    found = {
        str(path.relative_to(root))
        for folder in ("bot", "cogs", "engine", "config", "web")
        for path in (root / folder).rglob("*.py")
        if naming.search(path.read_text(encoding="utf-8"))
    }
    assert found == RAY_MODULES
