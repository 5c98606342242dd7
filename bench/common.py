"""Helpers shared by the benchmarks: a quiet, isolated tiny-model setup."""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
from pathlib import Path

from config.settings import Settings


def quiet() -> None:
    """No INFO logs on stdout: a benchmark's last stdout line must be its JSON."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)


def tiny_settings(**overrides: object) -> Settings:
    """Settings on the tiny model in a fresh temporary data folder."""
    data_dir = Path(tempfile.mkdtemp(prefix="imagine-bench-"))
    values: dict[str, object] = {"model": "tiny", "data_dir": data_dir, "log_level": "WARNING", "preview_every": 0}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)
