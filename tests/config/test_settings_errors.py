"""Configuration mistakes read as sentences: the file that cannot be used and why, a top-level key written after a
section, pydantic's wording taken out, list settings in the environment, and the nearest name for a token
variable."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from config.errors import ConfigError, closest_key
from config.settings import Settings, load_settings
from config.sources import misnamed_token_variables
from tests.bot.operations.test_owner_mistakes import FAKE_TOKEN, unreadable


def _error(**overrides: object) -> str:
    """The message of the ConfigError that loading the settings raises."""
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    return str(caught.value)


def _toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    toml = tmp_path / "bot.toml"
    toml.write_text(text)
    monkeypatch.setenv("IMAGINE_CONFIG", str(toml))
    return toml


# --- the file -----------------------------------------------------------------------------------------------------


def test_the_default_file_is_optional_and_dev_null_reads_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config/bot.toml in the working folder is fine; so is IMAGINE_CONFIG naming that very file (the Docker
    image does) or /dev/null."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGINE_CONFIG")
    assert load_settings(_env_file=None).model == "sd15"
    monkeypatch.setenv("IMAGINE_CONFIG", str(tmp_path / "config" / "bot.toml"))
    assert load_settings(_env_file=None).model == "sd15"
    monkeypatch.setenv("IMAGINE_CONFIG", os.devnull)
    assert load_settings(_env_file=None).model == "sd15"


def test_a_missing_explicit_file_names_the_path_and_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative IMAGINE_CONFIG that is not there: the path, and where it was looked for."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGINE_CONFIG", "conf/bot.tmol")
    assert _error(_env_file=None) == (
        f"the configuration file conf/bot.tmol (relative to the working folder {tmp_path}) named by IMAGINE_CONFIG "
        "does not exist: fix the path, or create it from config/bot.example.toml"
    )


def test_a_default_file_that_is_a_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """config/bot.toml as a folder (a bind mount of a missing file) is never a configuration."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGINE_CONFIG")
    (tmp_path / "config" / "bot.toml").mkdir(parents=True)
    assert _error(_env_file=None).startswith("the configuration file config/bot.toml is a folder, not a file")


def test_an_unreadable_env_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A .env the bot's user cannot open: named, with the uid, instead of a PermissionError."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"IMAGINE_DISCORD_TOKEN={FAKE_TOKEN}\n")
    with unreadable(env_file):
        message = _error(_env_file=env_file)
    assert message == (
        f"cannot read the .env file {env_file} (Permission denied): it must be readable by the user the bot runs "
        f"as (uid {os.geteuid()})"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model = \n", "bot.toml line 1: Invalid value (column 9)"),
        ('model = "tiny"\n\n[memory]\nvae_slicing = yes\n', "bot.toml line 4: Invalid value (column 15)"),
        ("[memory]\nvae_slicing", "bot.toml: Expected '=' after a key in a key/value pair (at end of document)"),
    ],
)
def test_a_syntax_error_names_the_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    """TOML's own reason, after the file's path and the line."""
    _toml(tmp_path, monkeypatch, text)
    assert _error(_env_file=None) == f"could not read the configuration: {tmp_path}/{expected}"


# --- a top-level key after a section ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ("[memory]\nvae_slicing = true", "in [memory]"),
        ("[tiers.free]\nallowance = 5", "in [tiers.free]"),
        ("[models.mine]\nsource = '/m'", "in [models.mine]"),
        ("[credits.kind_multipliers]\nupscale = 0.5", "credits.kind_multipliers"),
    ],
)
def test_a_top_level_key_after_a_section_says_where_it_belongs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str, where: str
) -> None:
    """`moderator_roles` appended at the end of the file lands in the last section: say it must come first."""
    _toml(tmp_path, monkeypatch, f'{section}\nmoderator_roles = ["Mods"]\n')
    message = _error(_env_file=None)
    assert where in message
    assert "'moderator_roles'" in message
    assert message.endswith(
        "(top-level settings such as moderator_roles must come before the first [section] in the file)"
    )


def test_a_typo_in_a_section_still_gets_the_nearest_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key that is no top-level setting keeps its did-you-mean."""
    _toml(tmp_path, monkeypatch, "[memory]\nofflaod = 'model'\n")
    assert _error(_env_file=None).endswith("unknown key 'offlaod' in [memory] (did you mean 'offload'?)")


# --- wording ------------------------------------------------------------------------------------------------------


def test_a_whole_settings_check_reads_as_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``(settings): `` and no ``Value error, `` before our own message."""
    monkeypatch.setenv("IMAGINE_MODEL", "sd1.5")
    assert _error(_env_file=None) == (
        "invalid configuration:\n  - model 'sd1.5' is not in the registry (did you mean 'sd15'?); use one of: "
        "flux-dev, flux-schnell, sd-turbo, sd15, sd15-lcm, sd35-medium, sdxl, sdxl-lcm, sdxl-turbo, tiny, tiny-flux, "
        "tiny-sd3, tiny-sdxl, tiny-turbo"
    )


def test_a_field_check_keeps_its_name_without_pydantic_wording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A field's own check: the setting and its variable, then our sentence."""
    _toml(tmp_path, monkeypatch, "[credits.kind_multipliers]\nupsacle = 0.3\n")
    message = _error(_env_file=None)
    assert "Value error" not in message
    assert message.endswith(
        "credits.kind_multipliers (IMAGINE_CREDITS__KIND_MULTIPLIERS): 'upsacle' is not a job kind (did you mean "
        "'upscale'?)"
    )


@pytest.mark.parametrize(
    ("variable", "value", "where"),
    [
        ("IMAGINE_MODERATOR_ROLES", "Mods", "environment"),
        ("IMAGINE_MODERATOR_ROLES", "Mods, 1234", ".env"),
        ("IMAGINE_ENABLED_MODELS", "sd15", "environment"),
    ],
)
def test_a_list_setting_in_the_environment_is_shown_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, where: str
) -> None:
    """A list setting not written as JSON: named with its JSON form, and that form, written as shown, loads."""
    env_file = tmp_path / ".env"
    if where == ".env":
        env_file.write_text(f"{variable}={value}\n")
    else:
        monkeypatch.setenv(variable, value)
    place = f"in {env_file}" if where == ".env" else "in the environment"
    message = _error(_env_file=env_file)
    assert message.startswith(f"invalid configuration:\n  - {variable.removeprefix('IMAGINE_').lower()} ")
    assert f"list settings {place} are JSON, e.g. {variable}='[" in message
    assert "EnvSettingsSource" not in message
    example = re.search(rf"{variable}=('.*')$", message)
    assert example is not None
    [json_value] = shlex.split(example[1])
    if where == ".env":
        env_file.write_text(f"{variable}={example[1]}\n")
    else:
        monkeypatch.setenv(variable, json_value)
    if variable == "IMAGINE_ENABLED_MODELS":  # the example names a model the server defines
        monkeypatch.setenv("IMAGINE_MODELS__MINE__SOURCE", "tiny:sd15")
    loaded = load_settings(_env_file=env_file)
    assert getattr(loaded, variable.removeprefix("IMAGINE_").lower()) == json.loads(json_value)


def test_a_table_setting_in_the_environment_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """A table given a plain value: JSON or one variable per key."""
    monkeypatch.setenv("IMAGINE_MEMORY", "fast")
    message = _error(_env_file=None)
    assert message.startswith("invalid configuration:\n  - memory (IMAGINE_MEMORY in the environment): ")
    assert "or one variable per key such as IMAGINE_MEMORY__KEY=value" in message


# --- the token's variable -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("token", "discord_token"),
        ("roles", "moderator_roles"),
        ("modle", "model"),
        ("max", None),  # several settings start with max_: no guess
        ("wibble", None),
    ],
)
def test_closest_key(name: str, expected: str | None) -> None:
    """By spelling first, else the one setting that has the name as a word."""
    assert closest_key(name, Settings.model_fields) == expected


def test_misnamed_token_variables_never_read_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each misnamed variable found, where it was found; IMAGINE_DISCORD_TOKEN and unrelated names are not."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"BOT_TOKEN={FAKE_TOKEN}\nHF_TOKEN=hf\nIMAGINE_DISCORD_TOKEN=\n")
    monkeypatch.setenv("DISCORD_TOKEN", FAKE_TOKEN)
    monkeypatch.delenv("TOKEN", raising=False)
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    found = misnamed_token_variables(env_file)
    assert found == [
        "found DISCORD_TOKEN in the environment; this bot reads IMAGINE_DISCORD_TOKEN: rename it",
        f"found BOT_TOKEN in {env_file}; this bot reads IMAGINE_DISCORD_TOKEN: rename it",
    ]
    assert not any(FAKE_TOKEN in line for line in found)
