"""doctor's speed line: what the engine turns on for the default model, from the settings and the probed device."""

from __future__ import annotations

import pytest

from bot.operations.doctor import speed_line
from config.settings import load_settings


@pytest.mark.parametrize(
    ("overrides", "device", "bf16", "line"),
    [
        ({}, "cuda", True, "speed (model sd15 on cuda): bf16, sdpa, tf32, channels_last, fused qkv"),
        ({}, "cuda", False, "speed (model sd15 on cuda): fp16, sdpa, tf32, channels_last, fused qkv"),
        ({"model": "sdxl"}, "cuda", True, "speed (model sdxl on cuda): bf16, sdpa, tf32"),
        ({"model": "tiny"}, "cpu", False, "speed (model tiny on cpu): fp32, sdpa"),
        (
            {"dtype": "fp16", "memory": {"tf32": False, "fused_qkv": False, "compile": True}},
            "cuda",
            True,
            "speed (model sd15 on cuda): fp16, sdpa, channels_last, compiled (regional); "
            "the engine compiles at start-up (warm-up)",
        ),
    ],
)
def test_speed_line(overrides: dict[str, object], device: str, bf16: bool, line: str) -> None:
    """The defaults on CUDA, bf16 only where the card has it, SDXL without the layout switches, the owner's choices."""
    assert speed_line(load_settings(_env_file=None, **overrides), device, bf16) == line
