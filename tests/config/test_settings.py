"""Settings: sources, validation messages that name the setting, and a token that never prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import Settings, load_settings

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


EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "bot.example.toml"


def _load_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Settings:
    toml = tmp_path / "bot.toml"
    toml.write_text(text)
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    return load_settings(_env_file=None)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('modle = "tiny"\n', "unknown key 'modle' (did you mean 'model'?)"),
        (
            'model = "mine"\n[models.mine]\nsorce = "/m"\n',
            "unknown key 'sorce' in [models.mine] (did you mean 'source'?)",
        ),
        ("[memory]\nofflaod = 'model'\n", "unknown key 'offlaod' in [memory] (did you mean 'offload'?)"),
        (
            "[credits]\ndefualt_tier = 'free'\n",
            "unknown key 'defualt_tier' in [credits] (did you mean 'default_tier'?)",
        ),
        ("[tiers.free]\nalowance = 5\n", "unknown key 'alowance' in [tiers.free] (did you mean 'allowance'?)"),
        ("[scheduler]\nmax_atempts = 2\n", "unknown key 'max_atempts' in [scheduler] (did you mean 'max_attempts'?)"),
        ("[loras.pixel]\npaht = '/l.safetensors'\n", "unknown key 'paht' in [loras.pixel] (did you mean 'path'?)"),
        ("[credits.kind_multipliers]\nupsacle = 0.3\n", "'upsacle' is not a job kind (did you mean 'upscale'?)"),
        ("wibble = 1\n", "unknown key 'wibble'"),
    ],
)
def test_unknown_toml_keys_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, fragment: str
) -> None:
    """A typo anywhere in config/bot.toml is a ConfigError naming the key and the nearest valid one."""
    with pytest.raises(ConfigError) as caught:
        _load_toml(tmp_path, monkeypatch, text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "fragment"),
    [
        ("IMAGINE_MODLE", "IMAGINE_MODLE is not a setting (did you mean IMAGINE_MODEL?)"),
        ("IMAGINE_MEMORY__OFFLAOD", "IMAGINE_MEMORY__OFFLAOD is not a setting (did you mean IMAGINE_MEMORY__OFFLOAD?)"),
        ("IMAGINE_MODELS__MINE__SORCE", "(did you mean IMAGINE_MODELS__MINE__SOURCE?)"),
        ("IMAGINE_MAX_STEPS__X", "IMAGINE_MAX_STEPS__X is not a setting"),
    ],
)
def test_unknown_environment_variables_are_errors(
    monkeypatch: pytest.MonkeyPatch, variable: str, fragment: str
) -> None:
    """An IMAGINE_ variable that names no setting is refused with the nearest one."""
    monkeypatch.setenv(variable, "tiny")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert fragment in str(caught.value)


def test_dotenv_typos_are_errors_and_unrelated_variables_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In .env and the environment only IMAGINE_ names are ours: HF_TOKEN and friends pass, IMAGINE_ typos do not."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("MY_APP_SETTING", "1")
    env_file = tmp_path / ".env"
    env_file.write_text(f"HF_TOKEN=abc\nDATABASE_URL=sqlite://x\nIMAGINE_DISCORD_TOKEN={TOKEN}\nIMAGINE_MODEL=tiny\n")
    assert load_settings(_env_file=env_file).model == "tiny"
    env_file.write_text(f"HF_TOKEN=abc\nIMAGINE_DISCORD_TOKEN={TOKEN}\nimagine_max_step=5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=env_file)
    message = str(caught.value)
    assert "imagine_max_step is not a setting (did you mean IMAGINE_MAX_STEPS?)" in message
    assert "HF_TOKEN" not in message and TOKEN not in message


def test_config_variable_in_dotenv_is_explained(tmp_path: Path) -> None:
    """IMAGINE_CONFIG in .env would be silently ignored (the file is chosen before .env is read): say so."""
    env_file = tmp_path / ".env"
    env_file.write_text("IMAGINE_CONFIG=/etc/imagine.toml\n")
    with pytest.raises(ConfigError, match=r"IMAGINE_CONFIG in .* has no effect"):
        load_settings(_env_file=env_file)


def test_the_example_file_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """config/bot.example.toml, copied as it is, loads without an unknown key."""
    monkeypatch.setenv("IMAGINE_CONFIG", str(EXAMPLE))
    settings = load_settings(_env_file=None)
    assert settings.model == "sd15"


def test_partial_kind_multipliers_keep_the_other_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting one kind's multiplier keeps the defaults of the others (a job of another kind still has a price)."""
    settings = _load_toml(tmp_path, monkeypatch, "[credits.kind_multipliers]\nupscale = 0.25\n")
    assert settings.credits.kind_multipliers["upscale"] == 0.25
    assert settings.credits.kind_multipliers["zoom"] == 1.25


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('model = "sd15"\n', ("sd15",)),
        ('model = "tiny"\n[models.mine]\nsource = "/m"\n[models.art]\nsource = "/a"\n', ("tiny", "mine", "art")),
        ('model = "mine"\n[models.mine]\nsource = "/m"\n', ("mine",)),
        (
            'model = "mine"\nenabled_models = ["sdxl"]\n[models.mine]\nsource = "/m"\n[models.b]\nsource = "/b"\n',
            ("mine", "sdxl"),
        ),
        ('model = "tiny"\nenabled_models = ["tiny", "tiny-sdxl"]\n', ("tiny", "tiny-sdxl")),
    ],
)
def test_member_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: tuple[str, ...]) -> None:
    """Members may pick the default plus the owner's [models.NAME] (or exactly enabled_models); built-in hub and
    tiny models only when listed or the default."""
    assert _load_toml(tmp_path, monkeypatch, text).member_models == expected


def test_unknown_enabled_model_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name in enabled_models that is not a model is a ConfigError with the nearest name."""
    with pytest.raises(
        ConfigError, match=r"enabled_models names 'sdx1', which is not a model \(did you mean 'sdxl'\?\)"
    ):
        _load_toml(tmp_path, monkeypatch, 'model = "tiny"\nenabled_models = ["sdx1"]\n')


@pytest.mark.parametrize("value", ["12", "4", "0", "1000"])
def test_size_multiple_must_be_a_multiple_of_8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """What diffusers' pipelines accept: 8, 16, ... 128."""
    with pytest.raises(ConfigError, match="size_multiple"):
        _load_toml(tmp_path, monkeypatch, f'model = "m"\n[models.m]\nsource = "/m"\nsize_multiple = {value}\n')


def test_moderator_role_ids_may_be_toml_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`moderator_roles = ["Mods", 1234]`: a role id written as a number is read as that id."""
    toml = tmp_path / "bot.toml"
    toml.write_text('moderator_roles = ["Mods", 123456789012345678]\n')
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    assert load_settings(_env_file=None).moderator_roles == ["Mods", "123456789012345678"]
