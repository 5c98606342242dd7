"""What the SD3.5 and FLUX.1 tests share: a FLUX.1-schnell-like entry on the tiny FLUX.1 weights, and an engine
process started on a flow model for a test module."""

from __future__ import annotations

from collections.abc import Iterator

from bot.running.engine_config import engine_config
from bot.running.engine_supervisor import EngineSupervisor
from config.settings import Settings

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


def module_engine(settings: Settings) -> Iterator[EngineSupervisor]:
    """An engine process for ``settings`` (its start-up model loaded first), stopped when the module ends."""
    engine = EngineSupervisor(engine_config(settings), start_timeout_s=ENGINE_START_S)
    engine.spawn()
    yield engine
    engine.stop()
