"""The ControlNet registry: [controlnet.NAME] and [depth] from the configuration file, their validation, the built-in
tiny ControlNets, the example file's entries, and what the engine is started with."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from bot.running.engine_config import engine_config
from config.control_registry import BUILTIN_CONTROLNETS, ControlNetSpec, controlnet_registry
from config.errors import ConfigError
from config.settings import Settings, load_settings
from engine.protocol import ControlNetEntry

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "bot.example.toml"


def _load_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Settings:
    toml = tmp_path / "bot.toml"
    toml.write_text(text)
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    return load_settings(_env_file=None)


def test_controlnets_and_depth_are_read_from_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An owner's ControlNet with its family and modes, and the depth estimator's source."""
    settings = _load_toml(
        tmp_path,
        monkeypatch,
        'model = "tiny"\n[controlnet.edges]\nsource = "/cn/edges"\nfamily = "sdxl"\n'
        'modes = ["canny", "raw", "canny"]\n[depth]\nsource = "Intel/dpt-hybrid-midas"\n',
    )
    assert settings.controlnet == {"edges": ControlNetSpec(source="/cn/edges", family="sdxl", modes=["canny", "raw"])}
    assert settings.depth.source == "Intel/dpt-hybrid-midas"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[controlnet.x]\nsource = "/x"\nmodes = ["pose"]\n', "controlnet.x.modes"),
        ('[controlnet.x]\nsource = "/x"\nmodes = []\n', "controlnet.x.modes"),
        ('[controlnet.x]\nsource = "/x"\nfamily = "sd3"\n', "controlnet.x.family"),
        ('[controlnet.x]\nmodes = ["canny"]\n', "controlnet.x.source"),
        ('[controlnet.x]\nsource = "/x"\nmode = ["canny"]\n', "mode"),
        ('[depth]\nsorce = "x"\n', "sorce"),
    ],
)
def test_bad_entries_name_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, fragment: str
) -> None:
    """A mode that is not a control mode, no mode, an unknown family, no source, a misspelt key: each named."""
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        _load_toml(tmp_path, monkeypatch, 'model = "tiny"\n' + text)


def test_the_owners_entry_wins_over_a_built_in_of_the_same_name() -> None:
    mine = ControlNetSpec(source="/cn/mine", family="sd15", modes=["canny"])
    registry = controlnet_registry({"tiny-controlnet": mine, "extra": mine})
    assert registry["tiny-controlnet"] is mine
    assert registry["tiny-controlnet-sdxl"] == BUILTIN_CONTROLNETS["tiny-controlnet-sdxl"]
    assert list(registry)[-1] == "extra"


def test_the_engine_is_started_with_every_controlnet_and_the_depth_source(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        model="tiny",
        data_dir=tmp_path,
        controlnet={"edges": {"source": "/cn/edges", "family": "sdxl"}},
        depth={"source": "tiny:depth"},
    )
    config = engine_config(settings)
    assert config.controlnets == (
        ControlNetEntry("tiny-controlnet", "tiny:controlnet-sd15", "sd15"),
        ControlNetEntry("tiny-controlnet-sdxl", "tiny:controlnet-sdxl", "sdxl"),
        ControlNetEntry("edges", "/cn/edges", "sdxl"),
    )
    assert config.depth_source == "tiny:depth"


def test_the_examples_commented_controlnets_are_valid_entries() -> None:
    """The [controlnet.*] examples of config/bot.example.toml, uncommented, are entries the registry accepts, and
    its [depth] is off."""
    text = EXAMPLE.read_text(encoding="utf-8")
    lines, inside = [], False
    for line in text.splitlines():
        header = re.fullmatch(r"# \[controlnet\.[\w-]+\]", line) is not None
        inside = header or (inside and (line == "#" or re.match(r"# \w+ = ", line) is not None))
        if inside:
            lines.append(line.removeprefix("#").removeprefix(" "))
    examples = tomllib.loads("\n".join(lines))["controlnet"]
    assert {"canny-sd15", "depth-sdxl"} <= set(examples)
    assert all(ControlNetSpec(**fields).source for fields in examples.values())
    assert tomllib.loads(text)["depth"] == {"source": ""}
    assert tomllib.loads(text)["credits"]["kind_multipliers"]["control"] == 1.5
