"""A real engine process whose image safety check flags every image (a tiny StableDiffusionSafetyChecker built in
code with a threshold below any similarity), shared by the tests of the check in the worker, Discord and the web.

One engine for the session whatever module asks first (each spawned engine pays the torch and diffusers import), on
a data folder of its own: the session's engine has no safety classifier.
"""

from __future__ import annotations

import atexit
from pathlib import Path

import pytest

from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings
from tests.builders.tiny_safety import FLAG_ALL, build_tiny_safety_checker
from tests.conftest import ENGINE_TIMEOUT_S, make_settings

_DATA_DIR: Path | None = None
_ENGINE: EngineSupervisor | None = None


def flagging_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flagging engine's data folder, with its classifier in ``classifiers/flag-all``."""
    global _DATA_DIR
    if _DATA_DIR is None:
        _DATA_DIR = tmp_path_factory.mktemp("safety-data")
        build_tiny_safety_checker(_DATA_DIR / "classifiers" / "flag-all", threshold=FLAG_ALL)
    return _DATA_DIR


def safety_settings(data_dir: Path, database: Path, *, enabled: bool = True, action: str = "spoiler") -> Settings:
    """Settings on the tiny model and the flagging classifier, with the check ``enabled`` and ``action``."""
    classifier = str(data_dir / "classifiers" / "flag-all")
    return make_settings(
        data_dir,
        database_path=database,
        safety={"enabled": enabled, "classifier": classifier, "action": action},
    )


def flagging_engine(tmp_path_factory: pytest.TempPathFactory) -> EngineSupervisor:
    """The session's flagging engine, started on first use and stopped when the tests end."""
    global _ENGINE
    if _ENGINE is None:
        data_dir = flagging_data_dir(tmp_path_factory)
        settings = safety_settings(data_dir, data_dir / "engine.db")
        _ENGINE = EngineSupervisor(engine_config(settings), start_timeout_s=ENGINE_TIMEOUT_S)
        _ENGINE.spawn()
        atexit.register(_ENGINE.stop)
    return _ENGINE
