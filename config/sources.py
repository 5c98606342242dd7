"""Where settings come from: the TOML file (``config/bot.toml`` or the one ``IMAGINE_CONFIG`` names), the
environment and a ``.env`` file; reading the TOML file, and variables an owner gave a name this bot does not read.

``config/bot.toml`` is optional; a file named by ``IMAGINE_CONFIG`` must exist (``IMAGINE_CONFIG=/dev/null`` reads
none). Every way reading them can fail is a :class:`ConfigError` that names the file and what to change.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from config.errors import ConfigError

ENV_PREFIX = "IMAGINE_"
CONFIG_VARIABLE = f"{ENV_PREFIX}CONFIG"
"""Names the TOML file; the one IMAGINE_ variable that is not a setting."""
NESTED_DELIMITER = "__"
DEFAULT_CONFIG_FILE = Path("config/bot.toml")
DEFAULT_ENV_FILE = ".env"
TOKEN_VARIABLE = f"{ENV_PREFIX}DISCORD_TOKEN"
MISNAMED_TOKEN_VARIABLES = ("DISCORD_TOKEN", "BOT_TOKEN", "TOKEN")
"""Names other bots read their token from; an owner who copied one is told to rename it."""


def config_file() -> Path:
    """The TOML file settings are read from: ``IMAGINE_CONFIG``, else ``config/bot.toml``."""
    return Path(os.environ.get(CONFIG_VARIABLE, DEFAULT_CONFIG_FILE))


def config_file_is_optional(path: Path) -> bool:
    """Whether ``path`` may be missing: only the default ``config/bot.toml`` may (also when ``IMAGINE_CONFIG``
    names that very file, as the Docker image does)."""
    return CONFIG_VARIABLE not in os.environ or path.resolve() == DEFAULT_CONFIG_FILE.resolve()


def read_config_file() -> dict[str, Any]:
    """The settings in the TOML file (``{}`` when the optional default file does not exist).

    Raises ConfigError naming the file: one named by ``IMAGINE_CONFIG`` that does not exist, a folder, a file the
    bot's user cannot read, text that is not UTF-8, and a TOML syntax error with its line.
    """
    path = config_file()
    described = f"{path} (from {CONFIG_VARIABLE})" if CONFIG_VARIABLE in os.environ else str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        if config_file_is_optional(path):
            return {}
        where = "" if path.is_absolute() else f" (relative to the working folder {Path.cwd()})"
        raise ConfigError(
            f"the configuration file {path}{where} named by {CONFIG_VARIABLE} does not exist: fix the path, or create "
            f"it from config/bot.example.toml"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"the configuration file {described} is a folder, not a file: point {CONFIG_VARIABLE} at a TOML file "
            "(Docker creates a folder when a file it should mount is missing on the host: remove the folder and copy "
            "config/bot.example.toml there)"
        ) from None
    except PermissionError as error:
        raise ConfigError(
            f"cannot read the configuration file {path} ({error.strerror}): it must be readable by the user the bot "
            f"runs as (uid {os.geteuid()})"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path} ({error.strerror or error})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"the configuration file {path} is not UTF-8 text (byte {error.start}): save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"could not read the configuration: {describe_toml_error(path, error)}") from None


TOML_POSITION = re.compile(r"^(?P<message>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$", re.DOTALL)


def describe_toml_error(path: Path, error: tomllib.TOMLDecodeError) -> str:
    """``config/bot.toml line 172: Cannot declare ('tiers', 'free') twice (column 12)``."""
    text = str(error)
    found = TOML_POSITION.match(text)
    if found is None:
        return f"{path}: {text}"
    return f"{path} line {found['line']}: {found['message']} (column {found['column']})"


def check_env_file(env_file: str | Path | None) -> None:
    """A ``.env`` file that exists must be readable (both readers of it would otherwise crash). Raises
    ConfigError."""
    if env_file is None or not Path(env_file).is_file():
        return
    try:
        with open(env_file, "rb"):
            pass
    except OSError as error:
        raise ConfigError(
            f"cannot read the {Path(env_file).name} file {env_file} ({error.strerror}): it must be readable by the "
            f"user the bot runs as (uid {os.geteuid()})"
        ) from None


def sources_text(env_file: str | Path | None = DEFAULT_ENV_FILE) -> list[str]:
    """Which configuration file and which ``.env`` the settings come from, or that there is none (with the working
    folder, where both are looked for)."""
    path = config_file()
    if path.is_file():
        toml = f"configuration file: {path.resolve()}"
    else:
        toml = f"configuration file: none ({path} not found in {Path.cwd()})"
    if env_file is None:
        dotenv = ".env file: not read"
    elif Path(env_file).is_file():
        dotenv = f".env file: {Path(env_file).resolve()}"
    else:
        dotenv = f".env file: none ({env_file} not found in {Path.cwd()})"
    return [toml, dotenv]


def misnamed_token_variables(env_file: str | Path | None = DEFAULT_ENV_FILE) -> list[str]:
    """``found DISCORD_TOKEN in .env; this bot reads IMAGINE_DISCORD_TOKEN: rename it`` for each variable that
    other bots read their token from, set in the environment or ``env_file`` (their values are never read out)."""
    found: list[str] = []
    in_file: set[str] = set()
    if env_file is not None and Path(env_file).is_file():
        try:
            in_file = {name.upper() for name in dotenv_values(env_file, encoding="utf-8")}
        except (OSError, UnicodeDecodeError):
            in_file = set()
    for name in MISNAMED_TOKEN_VARIABLES:
        if name in os.environ:
            found.append(f"found {name} in the environment; this bot reads {TOKEN_VARIABLE}: rename it")
        if name in in_file:
            found.append(f"found {name} in {env_file}; this bot reads {TOKEN_VARIABLE}: rename it")
    return found
