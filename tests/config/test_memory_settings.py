"""[memory]: the speed switches' defaults and the forms an owner may write them in (TOML and environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.running.engine_config import engine_config
from config.errors import ConfigError
from config.settings import Settings, load_settings
from engine.protocol import MemoryOptions


def _load_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Settings:
    toml = tmp_path / "bot.toml"
    toml.write_text(text)
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    return load_settings(_env_file=None)


def test_fast_settings_are_the_defaults() -> None:
    """Nothing configured: channels_last and fused QKV decide by device and family, TF32 on, regional compile."""
    memory = load_settings(_env_file=None).memory
    assert (memory.channels_last, memory.fused_qkv, memory.tf32, memory.sdpa) == ("auto", "auto", True, True)
    assert (memory.compile, memory.compile_mode) == (False, "regional")


@pytest.mark.parametrize(
    ("text", "channels_last", "fused_qkv"),
    [
        ("[memory]\nchannels_last = true\nfused_qkv = false\n", True, False),
        ("[memory]\nchannels_last = false\nfused_qkv = true\n", False, True),
        ('[memory]\nchannels_last = "auto"\nfused_qkv = "auto"\n', "auto", "auto"),
    ],
)
def test_switches_take_true_false_or_auto_in_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, channels_last: object, fused_qkv: object
) -> None:
    """The owner's true/false of before still works; "auto" lets the engine decide."""
    memory = _load_toml(tmp_path, monkeypatch, text).memory
    assert memory.channels_last == channels_last and memory.fused_qkv == fused_qkv


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("auto", "auto")])
def test_switches_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: object) -> None:
    """IMAGINE_MEMORY__FUSED_QKV=false switches fused QKV off (the environment only has text)."""
    monkeypatch.setenv("IMAGINE_MEMORY__FUSED_QKV", value)
    assert load_settings(_env_file=None).memory.fused_qkv == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            '[memory]\nchannels_last = "sometimes"\n',
            "memory.channels_last (IMAGINE_MEMORY__CHANNELS_LAST): 'sometimes' is not one of true, false, \"auto\"",
        ),
        (
            '[memory]\ncompile_mode = "partial"\n',
            "memory.compile_mode (IMAGINE_MEMORY__COMPILE_MODE): Input should be 'regional' or 'full'",
        ),
    ],
)
def test_bad_switch_values_name_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, fragment: str
) -> None:
    """A value that is neither true, false nor auto (or an unknown compile mode) names the setting."""
    with pytest.raises(ConfigError) as caught:
        _load_toml(tmp_path, monkeypatch, text)
    assert fragment in str(caught.value)


def test_engine_gets_the_switches_and_each_models_base_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's start-up configuration carries the switches as set and each model's base size (the warm-up's)."""
    settings = _load_toml(
        tmp_path,
        monkeypatch,
        '[memory]\nchannels_last = false\ncompile = true\ncompile_mode = "full"\n'
        '[models.mine]\nsource = "/models/mine"\nbase_size = 640\n',
    )
    config = engine_config(settings)
    assert config.memory == MemoryOptions(channels_last=False, compile=True, compile_mode="full")
    sizes = {entry.name: entry.base_size for entry in config.models}
    assert sizes["mine"] == 640 and sizes["sdxl"] == 1024 and sizes["tiny"] == 64
