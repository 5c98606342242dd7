"""What the SD3.5 and FLUX.1 tests share: the tiny flow models' registry entries and an engine configuration holding
both, a FLUX.1-schnell-like entry on the tiny FLUX.1 weights, and an engine process started on a flow model for a
test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.model_registry import BUILTIN_MODELS
from config.settings import Settings
from engine.protocol import EngineConfig, ModelEntry

SCHNELL = {  # FLUX.1-schnell's limits on the tiny FLUX.1 weights (the hub model is not on this machine)
    "source": "tiny:flux",
    "family": "flux",
    "steps": 4,
    "max_steps": 4,
    "cfg": 0.0,
    "max_cfg": 0.0,
    "base_size": 64,
}
ENGINE_START_S = 180
FLOW_FAMILIES = {"tiny-sd3": "sd3", "tiny-flux": "flux"}
"""The tiny flow models and their families."""
FLOW_ENTRIES = tuple(
    ModelEntry(name, BUILTIN_MODELS[name].source, family, base_size=BUILTIN_MODELS[name].base_size)
    for name, family in FLOW_FAMILIES.items()
)


def flow_engine_config(root: Path) -> EngineConfig:
    """An engine configuration on the tiny SD3 with the tiny FLUX.1 beside it (both kept loaded), under ``root``."""
    return EngineConfig("tiny-sd3", "tiny:sd3", "sd3", str(root), models=FLOW_ENTRIES, max_loaded_models=2)


def module_engine(settings: Settings) -> Iterator[EngineSupervisor]:
    """An engine process for ``settings`` (its start-up model loaded first), stopped when the module ends."""
    engine = EngineSupervisor(engine_config(settings), start_timeout_s=ENGINE_START_S)
    engine.spawn()
    yield engine
    engine.stop()
