"""Engines on a Ray cluster: one actor per GPU of every host that joined it (``engine.backend = "ray"``).

The bot joins the cluster (``engine.ray_address``) and runs as many engines as the cluster has
``engine.ray_resources`` for (or ``engine.ray_engines``). A host that joins adds resources, hence engines (the pool
polls :meth:`RayEngines.wanted`); one that leaves takes its engines' jobs back to the queue as a crash would.

``ray`` is imported only inside functions (``import bot…`` never loads it).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping

from bot.running.engine_config import engine_config
from bot.running.engine_pool import supervised_engine
from bot.running.engine_supervisor import EngineSupervisor
from bot.running.ray_engine import RayEngineRun
from config.errors import ConfigError
from config.settings import Settings

log = logging.getLogger(__name__)


def engines_for(available: Mapping[str, float], each: Mapping[str, float]) -> int:
    """How many engines asking ``each`` fit in a cluster holding ``available`` (whole engines only)."""
    return min(math.floor(available.get(name, 0.0) / amount + 1e-9) for name, amount in each.items())


class RayEngines:
    """The engines of a Ray cluster, for :class:`~bot.running.engine_pool.EnginePool`. Joins the cluster at once;
    raises ConfigError when it cannot."""

    def __init__(self, settings: Settings) -> None:
        import ray

        self.settings = settings
        self.poll_s: float | None = settings.engine.ray_poll_s
        self._joined_here = not ray.is_initialized()
        try:
            ray.init(
                address=settings.engine.ray_address,
                namespace=settings.engine.ray_namespace,
                ignore_reinit_error=True,
                log_to_driver=True,  # the engines' logs reach the bot's terminal, as a local engine's do
            )
        except Exception as error:  # whatever Ray raises, the owner reads which address failed and why
            raise ConfigError(
                f"could not join the Ray cluster at {settings.engine.ray_address!r}: {error}; start it with "
                "`ray start --head` (or fix engine.ray_address)"
            ) from error
        log.info("joined the Ray cluster at %s (%s)", settings.engine.ray_address, self._resources_line())

    def wanted(self) -> int:
        """``engine.ray_engines`` when it is a number, else as many engines as the cluster's resources hold now."""
        import ray

        if isinstance(self.settings.engine.ray_engines, int):
            return self.settings.engine.ray_engines
        return engines_for(ray.cluster_resources(), self.settings.engine.ray_resources)

    def create(self, index: int) -> tuple[EngineSupervisor, str]:
        """Engine number ``index``: an engine actor wherever Ray finds its resources (not started yet)."""
        settings = self.settings
        start_run = functools.partial(
            RayEngineRun,
            resources=settings.engine.ray_resources,
            name=f"imaginebot-engine-{index}",
            data_dir=settings.engine.ray_data_dir,
        )
        return supervised_engine(settings, engine_config(settings), start_run), f"ray:{index}"

    def close(self) -> None:
        """Leave the cluster, when this provider joined it."""
        import ray

        if self._joined_here and ray.is_initialized():
            ray.shutdown()

    def _resources_line(self) -> str:
        import ray

        total = ray.cluster_resources()
        asked = ", ".join(f"{name} {total.get(name, 0):g}" for name in self.settings.engine.ray_resources)
        return f"{asked}: {self.wanted()} engine(s)"
