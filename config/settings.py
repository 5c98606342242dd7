"""All of imaginebot's settings in one place.

Values come from, highest priority first: keyword arguments (tests), environment variables with the
``IMAGINE_`` prefix (nested values use ``__``, e.g. ``IMAGINE_MODELS__MINE__SOURCE``), a ``.env`` file in the
working directory, and a TOML file (``config/bot.toml``, or the path in ``IMAGINE_CONFIG``). Every setting is
documented in ``config/bot.example.toml``.

``config/bot.toml`` is optional; a file named by ``IMAGINE_CONFIG`` must exist (``IMAGINE_CONFIG=/dev/null`` reads
none). Every way reading them can fail is a :class:`ConfigError` that names the file and what to change.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

ENV_PREFIX = "IMAGINE_"
CONFIG_VARIABLE = f"{ENV_PREFIX}CONFIG"
"""Names the TOML file; the one IMAGINE_ variable that is not a setting."""
NESTED_DELIMITER = "__"
DEFAULT_CONFIG_FILE = Path("config/bot.toml")
DEFAULT_ENV_FILE = ".env"
TOKEN_VARIABLE = f"{ENV_PREFIX}DISCORD_TOKEN"
MISNAMED_TOKEN_VARIABLES = ("DISCORD_TOKEN", "BOT_TOKEN", "TOKEN")
"""Names other bots read their token from; an owner who copied one is told to rename it."""

SIZE_STEP = 8
"""Width and height of every image are multiples of this: diffusers' Stable Diffusion pipelines refuse others, and
it is the VAE factor of SD1.x/2.x/SDXL. The tiny test models need only 4 (a VAE factor of 2 and one UNet
downsampling), so the pipelines' 8 is what they truly need too."""

Family = Literal["sd15", "sd2", "sdxl"]
Lane = Literal["turbo", "fast", "relax"]


class ConfigError(Exception):
    """A setting is missing or has a value of the wrong form; the message says which and what to write."""

    def one_line(self) -> str:
        """The message as one line (``invalid configuration: a; b``), for a log line or a health check."""
        return one_line(str(self))


def one_line(message: str) -> str:
    """``invalid configuration:`` and its ``- item`` lines as one line: ``invalid configuration: a; b``."""
    lines = [line.strip().removeprefix("- ") for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {'; '.join(lines[1:])}"
    return "; ".join(lines)


class ModelSpec(BaseModel):
    """One entry of the model registry: where the weights live and the defaults a job gets."""

    model_config = {"extra": "forbid"}

    source: str = Field(
        description="'tiny:<family>', a local diffusers folder, a single .safetensors file, or a Hugging Face hub id"
    )
    config: str = Field(
        default="", description="for a single-file source: a local diffusers folder of the same family (no hub)"
    )
    family: Family = "sd15"
    steps: int = Field(default=25, ge=1, le=150)
    cfg: float = Field(default=7.0, ge=0.0, le=30.0)
    base_size: int = Field(default=512, ge=32, le=4096, description="side of the square image at --ar 1:1")
    size_multiple: int = Field(
        default=SIZE_STEP,
        ge=SIZE_STEP,
        le=128,
        multiple_of=SIZE_STEP,
        description="width and height are multiples of this (8: what Stable Diffusion pipelines accept)",
    )
    cost_multiplier: float = Field(default=1.0, gt=0.0, le=100.0)


class LoraSpec(BaseModel):
    """A LoRA file prompts may use as ``<lora:NAME:weight>``."""

    model_config = {"extra": "forbid"}

    path: str = Field(description="a .safetensors LoRA file (kohya/A1111 or diffusers format)")


class MemorySettings(BaseModel):
    """Memory and speed switches of the engine (see config/bot.example.toml)."""

    model_config = {"extra": "forbid"}

    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    offload: Literal["none", "model", "sequential", "auto"] = "none"
    channels_last: bool = False
    compile: bool = False
    quantize: Literal["none", "8bit", "4bit"] = "none"
    sdpa: bool = True


BUILTIN_MODELS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(source="tiny:sd15", family="sd15", steps=4, cfg=5.0, base_size=64),
    "tiny-sdxl": ModelSpec(source="tiny:sdxl", family="sdxl", steps=4, cfg=5.0, base_size=64),
    "sd15": ModelSpec(source="stable-diffusion-v1-5/stable-diffusion-v1-5", family="sd15", steps=25),
    "sdxl": ModelSpec(source="stabilityai/stable-diffusion-xl-base-1.0", family="sdxl", steps=30, base_size=1024),
}


class TierSpec(BaseModel):
    """A member tier: allowance top-up, limits, and whether its jobs cost anything."""

    model_config = {"extra": "forbid"}

    allowance: int = Field(default=100, ge=0, description="credits the balance is topped up to (a floor)")
    refill: Literal["daily", "monthly", "never"] = "daily"
    max_running: int = Field(default=1, ge=1, le=64, description="jobs of one member running at once")
    max_queued: int = Field(default=5, ge=1, le=100_000, description="jobs of one member waiting at once")
    relax: bool = Field(default=True, description="may use the relax lane")
    unlimited: bool = Field(default=False, description="jobs cost nothing")


DEFAULT_TIERS: dict[str, TierSpec] = {
    "free": TierSpec(allowance=100, refill="daily", max_running=1, max_queued=5),
    "supporter": TierSpec(allowance=2000, refill="monthly", max_running=2, max_queued=20),
    "unlimited": TierSpec(allowance=0, refill="never", max_running=4, max_queued=100, unlimited=True),
}


DEFAULT_KIND_MULTIPLIERS: dict[str, float] = {
    "imagine": 1.0,
    "reroll": 1.0,
    "variation": 1.0,
    "upscale": 0.5,
    "zoom": 1.25,
    "pan": 1.0,
    "img2img": 1.0,
    "inpaint": 1.0,
    "sweep": 1.0,
}


class CreditsSettings(BaseModel):
    """What a job costs. One credit buys one 512x512 image at 20 steps in the fast lane on a 1.0 model."""

    model_config = {"extra": "forbid"}

    unit_pixels: int = Field(default=512 * 512, ge=1)
    unit_steps: int = Field(default=20, ge=1)
    credits_per_unit: float = Field(default=1.0, gt=0)
    min_cost: int = Field(default=1, ge=0, description="the least a paid job costs")
    turbo_multiplier: float = Field(default=2.0, ge=0)
    fast_multiplier: float = Field(default=1.0, ge=0)
    relax_multiplier: float = Field(default=0.0, ge=0)
    kind_multipliers: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_KIND_MULTIPLIERS),
        description="per job kind, times the pixel x step x image work; kinds not given keep their default",
    )
    default_tier: str = "free"
    console_tier: str = "unlimited"

    @field_validator("kind_multipliers", mode="before")
    @classmethod
    def _known_kinds(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for kind in value:
            if kind in Settings.model_fields:
                raise ValueError(f"{kind!r} is not a job kind{top_level_hint(kind)}")
            if kind not in DEFAULT_KIND_MULTIPLIERS:
                raise ValueError(f"{kind!r} is not a job kind{did_you_mean(str(kind), DEFAULT_KIND_MULTIPLIERS)}")
        return {**DEFAULT_KIND_MULTIPLIERS, **value}


class SchedulerSettings(BaseModel):
    """How the scheduler shares the GPU."""

    model_config = {"extra": "forbid"}

    fairness_window_s: float = Field(default=3600.0, gt=0, description="GPU time counted for fairness")
    relax_aging_s: float = Field(default=300.0, gt=0, description="a relax job waiting this long jumps fast")
    relax_usage_unit_s: float = Field(
        default=600.0, gt=0, description="each this much GPU time used adds one relax_aging_s to the wait"
    )
    lease_s: float = Field(default=120.0, gt=0, description="a running job is lost after this long without progress")
    lease_sweep_s: float = Field(default=30.0, gt=0, description="how often expired leases are looked for")
    max_attempts: int = Field(default=3, ge=1, le=20)
    max_batch: int = Field(default=1, ge=1, le=16)
    refill_check_s: float = Field(default=300.0, gt=0, description="how often allowances are checked")
    eta_window: int = Field(default=50, ge=1, description="recent jobs whose durations give the ETA")


class Settings(BaseSettings):
    """The bot's configuration. See config/bot.example.toml for every key with its meaning."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=DEFAULT_ENV_FILE,
        env_file_encoding="utf-8",
        env_nested_delimiter=NESTED_DELIMITER,
        extra="ignore",  # unknown keys are reported by load_settings (see unknown_setting_problems)
        validate_default=True,
    )

    discord_token: SecretStr | None = None
    sync_guild_id: int | None = Field(default=None, description="sync slash commands to this guild at once")
    model: str = "sd15"
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    enabled_models: list[str] = Field(
        default_factory=list,
        description="models members may pick besides `model`; empty = every model defined under [models.NAME]",
    )
    loras: dict[str, LoraSpec] = Field(default_factory=dict)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    max_loaded_models: int = Field(default=1, ge=1, le=8, description="models kept loaded at once (LRU)")
    memory_budget_gb: float = Field(default=0.0, ge=0.0, description="drop LRU models above this; 0 = no budget")
    preview_every: int = Field(default=5, ge=0, le=150, description="a latent preview every N steps; 0 = none")
    engine_max_batch: int = Field(default=1, ge=1, le=16, description="compatible jobs one pipeline call may take")
    data_dir: Path = Path("data")
    database_path: Path | None = None
    device: Literal["auto", "cuda", "mps", "xpu", "cpu"] = "auto"
    dtype: Literal["auto", "fp16", "bf16", "fp32"] = "auto"
    images_per_job: int = Field(default=4, ge=1, le=4)
    max_prompt_chars: int = Field(default=1500, ge=10, le=6000)
    max_steps: int = Field(default=60, ge=1, le=150)
    max_pixels: int = Field(default=1536 * 1536, ge=64 * 64)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="largest image a member may upload")
    max_upload_pixels: int = Field(default=4096 * 4096, ge=64 * 64, description="most pixels of an uploaded image")
    upload_retention_hours: int = Field(default=168, ge=1, description="uploads are deleted this long after last use")
    max_repeat: int = Field(default=4, ge=1, le=40, description="highest --repeat")
    max_prompts_per_message: int = Field(
        default=8, ge=1, le=100, description="jobs one /imagine may queue through permutations and --repeat"
    )
    engine_start_timeout_s: float = Field(default=600.0, gt=0)
    job_timeout_s: float = Field(default=900.0, gt=0)
    default_lane: Lane = "fast"
    moderator_roles: list[str] = Field(
        default_factory=list, description="role names or ids that may use /admin besides Manage Server"
    )
    credits: CreditsSettings = Field(default_factory=CreditsSettings)
    tiers: dict[str, TierSpec] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("moderator_roles", mode="before")
    @classmethod
    def _role_ids_as_text(cls, value: Any) -> Any:
        """A role id may be written as a TOML number (``moderator_roles = ["Mods", 1234]``)."""
        if isinstance(value, list):
            return [str(item) if isinstance(item, int) and not isinstance(item, bool) else item for item in value]
        return value

    @model_validator(mode="after")
    def _check_model_known(self) -> Settings:
        if self.model not in self.registry:
            known = ", ".join(sorted(self.registry))
            raise ValueError(
                f"model {self.model!r} is not in the registry{did_you_mean(self.model, self.registry)}; "
                f"use one of: {known}"
            )
        for name in self.enabled_models:
            if name not in self.registry:
                raise ValueError(
                    f"enabled_models names {name!r}, which is not a model{did_you_mean(name, self.registry)}; "
                    f"use built-in ones ({', '.join(BUILTIN_MODELS)}) or ones defined under [models.NAME]"
                )
        for role, tier in (("default_tier", self.credits.default_tier), ("console_tier", self.credits.console_tier)):
            if tier not in self.tiers:
                raise ValueError(f"credits.{role} {tier!r} is not a tier; use one of: {', '.join(sorted(self.tiers))}")
        return self

    @property
    def registry(self) -> dict[str, ModelSpec]:
        """Built-in models merged with the ones this server defines (which win on a name clash)."""
        return {**BUILTIN_MODELS, **self.models}

    @property
    def member_models(self) -> tuple[str, ...]:
        """The models members may pick (``--model``, autocomplete, /settings), the default ``model`` first.

        With ``enabled_models`` empty: the default plus every model defined under ``[models.NAME]``; the built-in
        hub models (``sd15``, ``sdxl``) and tiny models are not offered unless they are the default. Otherwise:
        the default plus exactly the listed names.
        """
        chosen = self.enabled_models if self.enabled_models else list(self.models)
        return tuple(dict.fromkeys([self.model, *chosen]))

    @property
    def database_file(self) -> Path:
        return self.database_path if self.database_path is not None else self.data_dir / "imagine.db"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = InitSettingsSource(settings_cls, read_config_file())
        return (init_settings, env_settings, dotenv_settings, toml)


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


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning unknown keys and validation errors into one ConfigError naming each bad setting.

    ``_env_file`` (as for ``Settings``) picks the ``.env`` file; it is ``.env`` in the working folder by default.
    """
    env_file = overrides.get("_env_file", Settings.model_config.get("env_file"))
    env_path = env_file if isinstance(env_file, str | Path) else None
    check_env_file(env_path)
    unknown = unknown_setting_problems(env_path)
    if unknown:
        raise ConfigError("\n".join(["invalid configuration:", *(f"  - {line}" for line in unknown)]))
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
    except SettingsError as error:
        raise ConfigError(describe_settings_error(error, env_path)) from None
    except ValueError as error:
        raise ConfigError(f"could not read the configuration: {error}") from None


SETTINGS_ERROR = re.compile(r'error parsing value for field "(?P<field>\w+)" from source "(?P<source>\w+)"')
LIST_EXAMPLES = {"moderator_roles": '["Mods", "1234"]', "enabled_models": '["sd15", "mine"]'}


def describe_settings_error(error: SettingsError, env_file: str | Path | None) -> str:
    """A variable pydantic-settings could not parse (a list or table setting not written as JSON): which one, and
    its JSON form."""
    found = SETTINGS_ERROR.search(str(error))
    if found is None:
        return f"could not read the configuration: {error}"
    field = found["field"]
    where = f"in {env_file}" if found["source"] == "DotEnvSettingsSource" and env_file else "in the environment"
    variable = ENV_PREFIX + field.upper()
    annotation = Settings.model_fields[field].annotation if field in Settings.model_fields else None
    if get_origin(annotation) is list:
        example = LIST_EXAMPLES.get(field, '["first", "second"]')
        message = f"list settings {where} are JSON, e.g. {variable}='{example}'"
    else:
        message = (
            f'a list or a table {where} is written as JSON (a list as \'["a", "b"]\', a table as \'{{"key": 1}}\'), '
            f"or one variable per key such as {variable}{NESTED_DELIMITER}KEY=value"
        )
    return f"invalid configuration:\n  - {field} ({variable} {where}): {message}"


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the setting as both its TOML key and its environment variable."""
    lines = ["invalid configuration:"]
    for problem in error.errors(include_url=False, include_input=False):
        location = [str(part) for part in problem["loc"]]
        key = ".".join(location)
        env_name = ENV_PREFIX + "__".join(location).upper()
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden" and location:
            parent = _model_at(tuple(location[:-1]))
            hint = did_you_mean(location[-1], parent.model_fields) if parent is not None else ""
            message = f"unknown setting{hint}"
        lines.append(f"  - {key} ({env_name}): {message}" if location else f"  - {message}")
    return "\n".join(lines)


# --- unknown keys -------------------------------------------------------------------------------------------------
# The top level ignores extra keys because pydantic-settings would otherwise refuse every unrelated variable of a
# .env file (HF_TOKEN, a database URL...). Unknown keys are found here instead, in the three places settings come
# from, and only among what is ours: the TOML file, and IMAGINE_-prefixed environment and .env variables.


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def top_level_hint(key: str) -> str:
    """For a top-level setting found inside a section: TOML puts every key after a ``[section]`` header into it."""
    return f" (top-level settings such as {key} must come before the first [section] in the file)"


def closest_key(name: str, keys: Iterable[str]) -> str | None:
    """The valid key closest to ``name``: by spelling, else the only key that has ``name`` as one of its words
    (``token`` -> ``discord_token``); None when nothing is close."""
    choices = list(keys)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return close[0]
    containing = [key for key in choices if name.lower() in key.split("_")]
    return containing[0] if len(containing) == 1 else None


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


def unknown_setting_problems(env_file: str | Path | None = DEFAULT_ENV_FILE) -> list[str]:
    """One line per key that is not a setting, in the TOML file, the environment and ``env_file``, each naming
    the closest valid key."""
    problems: list[str] = []
    toml_file = config_file()
    data = read_config_file()
    for path, suggestion in _unknown_keys(data, Settings, ()):
        section = f" in [{'.'.join(path[:-1])}]" if len(path) > 1 else ""
        hint = f" (did you mean {suggestion[-1]!r}?)" if suggestion else ""
        if len(path) > 1 and path[-1] in Settings.model_fields:
            hint = top_level_hint(path[-1])
        problems.append(f"{toml_file}: unknown key {path[-1]!r}{section}{hint}")
    for name in sorted(os.environ):
        problem = _unknown_variable(name, where="environment")
        if problem:
            problems.append(problem)
    if env_file is not None and Path(env_file).is_file():
        for name in dotenv_values(env_file, encoding="utf-8"):
            if name.upper() == CONFIG_VARIABLE:
                problems.append(
                    f"{CONFIG_VARIABLE} in {env_file} has no effect (the TOML file is chosen before {env_file} is "
                    "read); set it in the environment instead"
                )
                continue
            problem = _unknown_variable(name, where=str(env_file))
            if problem:
                problems.append(problem)
    return problems


def _unknown_variable(name: str, *, where: str) -> str | None:
    """What is wrong with an ``IMAGINE_`` variable that names no setting; None for a valid or unrelated one."""
    if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_VARIABLE:
        return None
    parts = name[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
    nested: Any = "set"
    for part in reversed(parts):
        nested = {part: nested}
    for _path, suggestion in _unknown_keys(nested, Settings, ()):
        hint = f" (did you mean {ENV_PREFIX + NESTED_DELIMITER.join(suggestion).upper()}?)" if suggestion else ""
        return f"{where}: {name} is not a setting{hint}"
    return None


def _unknown_keys(
    data: Mapping[str, Any], model: type[BaseModel], prefix: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """``(path, closest valid path or None)`` for each key of ``data`` that ``model`` does not have, recursively."""
    fields = model.model_fields
    for key, value in data.items():
        path = (*prefix, key)
        if key not in fields:
            close = closest_key(key, fields)
            yield path, ((*prefix, close) if close else None)
            continue
        section, entry = _section_of(fields[key].annotation)
        if not isinstance(value, Mapping):
            continue
        if section is not None:
            yield from _unknown_keys(value, section, path)
        elif entry is not None:
            for name, item in value.items():
                if isinstance(item, Mapping):
                    yield from _unknown_keys(item, entry, (*path, str(name)))
        elif get_origin(fields[key].annotation) is not dict:
            for inner in value:  # a plain value given parts (IMAGINE_MAX_STEPS__X)
                yield (*path, str(inner)), None


def _section_of(annotation: Any) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """``(model, None)`` for a section such as ``memory``, ``(None, model)`` for named entries such as ``models``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, None
    if get_origin(annotation) is dict:
        value_type = get_args(annotation)[1]
        if isinstance(value_type, type) and issubclass(value_type, BaseModel):
            return None, value_type
    return None, None


def _model_at(path: tuple[str, ...]) -> type[BaseModel] | None:
    """The model that holds the keys at ``path`` (``()`` is Settings, ``("models", "x")`` is ModelSpec)."""
    model: type[BaseModel] = Settings
    index = 0
    while index < len(path):
        field = model.model_fields.get(path[index])
        if field is None:
            return None
        section, entry = _section_of(field.annotation)
        if section is not None:
            model, index = section, index + 1
        elif entry is not None and index + 1 < len(path):
            model, index = entry, index + 2
        else:
            return None
    return model
