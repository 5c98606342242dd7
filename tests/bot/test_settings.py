"""Settings: sources, validation messages that name the setting, and a token that never prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, Settings, load_settings

TOKEN = "imagine-test-secret-" + "5f3a9c" * 8


def test_defaults_are_valid() -> None:
    """With nothing configured the settings load and point at the data folder."""
    settings = load_settings(_env_file=None)
    assert settings.discord_token is None
    assert settings.database_file == Path("data/imagine.db")
    assert "tiny" in settings.registry


def test_environment_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """config/bot.toml is read, and an IMAGINE_ variable wins over it."""
    toml = tmp_path / "bot.toml"
    toml.write_text('model = "tiny-sdxl"\nmax_steps = 30\n[models.mine]\nsource = "/models/mine"\nsteps = 12\n')
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    monkeypatch.setenv("IMAGINE_MAX_STEPS", "40")
    settings = load_settings(_env_file=None)
    assert settings.model == "tiny-sdxl"
    assert settings.max_steps == 40
    assert settings.registry["mine"].steps == 12


def test_dotenv_is_read(tmp_path: Path) -> None:
    """A .env file supplies settings (the usual home of the token)."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"IMAGINE_DISCORD_TOKEN={TOKEN}\nIMAGINE_MODEL=tiny\n")
    settings = load_settings(_env_file=env_file)
    assert settings.discord_token is not None
    assert settings.discord_token.get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("IMAGINE_MAX_STEPS", "lots", "max_steps (IMAGINE_MAX_STEPS)"),
        ("IMAGINE_MAX_STEPS", "0", "max_steps (IMAGINE_MAX_STEPS): Input should be greater than or equal to 1"),
        ("IMAGINE_DEVICE", "tpu", "device (IMAGINE_DEVICE): Input should be 'auto', 'cuda', 'mps', 'xpu' or 'cpu'"),
        ("IMAGINE_MODEL", "nope", "model 'nope' is not in the registry; use one of:"),
        ("IMAGINE_DEFAULT_LANE", "warp", "default_lane (IMAGINE_DEFAULT_LANE)"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str) -> None:
    """A bad value gives a ConfigError that names the setting and the expected form."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert fragment in str(caught.value)


def test_broken_toml_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TOML syntax error is reported as a configuration problem, not a traceback."""
    toml = tmp_path / "bot.toml"
    toml.write_text("model = \n")
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    with pytest.raises(ConfigError, match="could not read the configuration"):
        load_settings(_env_file=None)


def test_token_never_prints() -> None:
    """repr, str and model_dump of the settings hide the token."""
    settings = Settings(_env_file=None, discord_token=TOKEN)  # type: ignore[call-arg]
    for text in (repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()):
        assert TOKEN not in text
