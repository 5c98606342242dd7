"""Configuration: the one Settings object and the documented example file."""

from config.settings import BUILTIN_MODELS, ConfigError, ModelSpec, Settings, load_settings

__all__ = ["BUILTIN_MODELS", "ConfigError", "ModelSpec", "Settings", "load_settings"]
