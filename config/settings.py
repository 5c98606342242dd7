"""The bot's settings: the one :class:`Settings` object and :func:`load_settings`, which reads it.

Values come from, highest priority first: keyword arguments (tests), environment variables with the
``IMAGINE_`` prefix (nested values use ``__``, e.g. ``IMAGINE_MODELS__MINE__SOURCE``), a ``.env`` file in the
working directory, and a TOML file (``config/bot.toml``, or the path in ``IMAGINE_CONFIG``). Every setting is
documented in ``config/bot.example.toml``.

The parts live in modules of their own: :mod:`config.model_registry`, :mod:`config.policy`,
:mod:`config.engine_options`, :mod:`config.sources` (where settings come from) and :mod:`config.setting_problems`
(what is wrong with them, as lines an owner can act on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from config.control_registry import ControlNetSpec, DepthSpec
from config.describe_settings import DescribeSettings
from config.engine_options import MemorySettings
from config.engine_settings import EngineSettings
from config.errors import ConfigError, did_you_mean
from config.ip_adapters import IpAdapterSpec
from config.model_registry import BUILTIN_MODELS, LoraSpec, ModelSpec
from config.policy import DEFAULT_TIERS, CreditsSettings, SchedulerSettings, TierSpec
from config.safety_settings import SafetySettings
from config.setting_problems import describe_settings_error, describe_validation_error, unknown_setting_problems
from config.sources import DEFAULT_ENV_FILE, ENV_PREFIX, NESTED_DELIMITER, check_env_file, read_config_file
from config.web_settings import WebSettings
from engine.protocol import Lane


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
    ip_adapters: dict[str, IpAdapterSpec] = Field(
        default_factory=dict, description="IP-Adapters for image prompts and /blend, besides the built-in ones"
    )
    controlnet: dict[str, ControlNetSpec] = Field(
        default_factory=dict, description="ControlNets for control images, besides the built-in tiny ones"
    )
    depth: DepthSpec = Field(default_factory=DepthSpec, description="the depth estimator of control_mode depth")
    memory: MemorySettings = Field(default_factory=MemorySettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
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
    default_lane: Lane = Lane.FAST
    moderator_roles: list[str] = Field(
        default_factory=list, description="role names or ids that may use /admin besides Manage Server"
    )
    credits: CreditsSettings = Field(default_factory=CreditsSettings)
    tiers: dict[str, TierSpec] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    describe: DescribeSettings = Field(default_factory=DescribeSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
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


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning unknown keys and validation errors into one ConfigError naming each bad setting.

    ``_env_file`` (as for ``Settings``) picks the ``.env`` file; it is ``.env`` in the working folder by default.
    """
    env_file = overrides.get("_env_file", Settings.model_config.get("env_file"))
    env_path = env_file if isinstance(env_file, str | Path) else None
    check_env_file(env_path)
    unknown = unknown_setting_problems(Settings, env_path)
    if unknown:
        raise ConfigError("\n".join(["invalid configuration:", *(f"  - {line}" for line in unknown)]))
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, Settings)) from None
    except SettingsError as error:
        raise ConfigError(describe_settings_error(error, env_path, Settings)) from None
    except ValueError as error:
        raise ConfigError(f"could not read the configuration: {error}") from None
