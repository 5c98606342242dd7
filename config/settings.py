"""All of imaginebot's settings in one place.

Values come from, highest priority first: keyword arguments (tests), environment variables with the
``IMAGINE_`` prefix (nested values use ``__``, e.g. ``IMAGINE_MODELS__MINE__SOURCE``), a ``.env`` file in the
working directory, and a TOML file (``config/bot.toml``, or the path in ``IMAGINE_CONFIG``). Every setting is
documented in ``config/bot.example.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "IMAGINE_"
DEFAULT_CONFIG_FILE = Path("config/bot.toml")

Family = Literal["sd15", "sd2", "sdxl"]
Lane = Literal["turbo", "fast", "relax"]


class ConfigError(Exception):
    """A setting is missing or has a value of the wrong form; the message says which and what to write."""


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
    size_multiple: int = Field(default=64, ge=8, le=128, description="width and height are rounded to this")
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
    "tiny": ModelSpec(source="tiny:sd15", family="sd15", steps=4, cfg=5.0, base_size=64, size_multiple=16),
    "tiny-sdxl": ModelSpec(source="tiny:sdxl", family="sdxl", steps=4, cfg=5.0, base_size=64, size_multiple=16),
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
        default_factory=lambda: {
            "imagine": 1.0,
            "reroll": 1.0,
            "variation": 1.0,
            "upscale": 0.5,
            "zoom": 1.25,
            "pan": 1.0,
            "img2img": 1.0,
            "inpaint": 1.0,
            "sweep": 1.0,
        },
        description="per job kind, times the pixel x step x image work",
    )
    default_tier: str = "free"
    console_tier: str = "unlimited"


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
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    discord_token: SecretStr | None = None
    sync_guild_id: int | None = Field(default=None, description="sync slash commands to this guild at once")
    model: str = "sd15"
    models: dict[str, ModelSpec] = Field(default_factory=dict)
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

    @model_validator(mode="after")
    def _check_model_known(self) -> Settings:
        if self.model not in self.registry:
            known = ", ".join(sorted(self.registry))
            raise ValueError(f"model {self.model!r} is not in the registry; use one of: {known}")
        for role, tier in (("default_tier", self.credits.default_tier), ("console_tier", self.credits.console_tier)):
            if tier not in self.tiers:
                raise ValueError(f"credits.{role} {tier!r} is not a tier; use one of: {', '.join(sorted(self.tiers))}")
        return self

    @property
    def registry(self) -> dict[str, ModelSpec]:
        """Built-in models merged with the ones this server defines (which win on a name clash)."""
        return {**BUILTIN_MODELS, **self.models}

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
        toml_file = Path(os.environ.get(f"{ENV_PREFIX}CONFIG", DEFAULT_CONFIG_FILE))
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        return (init_settings, env_settings, dotenv_settings, toml)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one ConfigError that names each bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
    except ValueError as error:  # a TOML file that does not parse
        raise ConfigError(f"could not read the configuration: {error}") from None


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the setting as both its TOML key and its environment variable."""
    lines = ["invalid configuration:"]
    for problem in error.errors(include_url=False, include_input=False):
        location = [str(part) for part in problem["loc"]]
        key = ".".join(location) if location else "(settings)"
        env_name = ENV_PREFIX + "__".join(location).upper() if location else ""
        where = f"{key} ({env_name})" if env_name else key
        lines.append(f"  - {where}: {problem['msg']}")
    return "\n".join(lines)
