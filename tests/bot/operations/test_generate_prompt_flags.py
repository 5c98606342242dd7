"""``python -m bot generate`` with a multi-prompt, --chaos, --stop and --q, through a real engine process."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engine.metadata import read_parameters
from engine.prompt_weights import chaos_cfg
from tests.ahead import Ran, ahead
from tests.bot.operations.test_cli import one_command

PROMPT = "a lamp:: a red glow::2 dust::-0.5 --chaos 40 --stop 50 --q 2 --seed 5"


@pytest.mark.slow
@ahead(one_command("generate", PROMPT, "-o", "lamp.png", env=lambda _folder: {"IMAGINE_MODEL": "tiny"}))
def test_generate_renders_weights_chaos_stop_and_quality(ran: Ran) -> None:
    """--q 2 makes 8 steps and --stop 50 runs 4 of them (the progress line ends at 4/4); each image carries the CFG
    --chaos gave its seed and the prompt as typed."""
    (completed,) = ran.results
    assert completed.returncode == 0, completed.stderr
    assert "step 4/4" in completed.stderr and "/8" not in completed.stderr
    paths = [Path(line) for line in completed.stdout.split()]
    assert len(paths) == 4
    for seed, path in zip((5, 6, 7, 8), paths, strict=True):
        resolved = path if path.is_absolute() else ran.folder / path
        text = read_parameters(resolved.read_bytes()) or ""
        assert text.startswith("a lamp:: a red glow::2 dust::-0.5\nSteps: 8,")
        assert f"CFG scale: {chaos_cfg(5.0, 40, seed):g}, Seed: {seed}," in text
    with Image.open(ran.folder / "lamp.png") as grid:
        assert grid.size == (128, 128)
