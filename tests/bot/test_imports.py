"""The bot stays light: importing bot/ and cogs/ never imports torch or diffusers."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "bot",
    "bot.cli",
    "bot.discord_bot",
    "bot.service",
    "bot.worker",
    "bot.engine_supervisor",
    "bot.scheduler",
    "bot.ledger",
    "bot.costs",
    "bot.allowances",
    "bot.maintenance",
    "bot.store",
    "bot.prompt",
    "bot.grid",
    "cogs.imagine",
    "cogs.results",
    "engine.protocol",
    "engine.process",
    "engine.metadata",
    "config",
]


def test_bot_and_cogs_do_not_import_torch_or_diffusers() -> None:
    """A fresh interpreter imports every bot-side module and finds no torch, diffusers or transformers."""
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'accelerate') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == ""
