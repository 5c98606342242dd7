"""What the scheduling tests share: a settable clock, the settings they run under, a loaded scheduler."""

from __future__ import annotations

from bot.scheduling.scheduler import Scheduler
from bot.storage.store import Store
from config.model_registry import ModelSpec
from config.policy import SchedulerSettings, TierSpec
from config.settings import Settings

NOW = 1_800_000_000.0


class Clock:
    """A clock the test sets (``clock.now += 60``)."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def settings_for(**tiers: TierSpec) -> Settings:
    """Free and unlimited tiers (plus ``tiers``), a model that costs double, short leases and aging."""
    all_tiers = {
        "free": TierSpec(allowance=100, max_running=5, max_queued=50),
        "unlimited": TierSpec(allowance=0, refill="never", max_running=5, max_queued=50, unlimited=True),
        **tiers,
    }
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        model="tiny",
        models={"double": ModelSpec(source="tiny:sd15", cost_multiplier=2.0)},
        tiers=all_tiers,
        scheduler=SchedulerSettings(lease_s=60, max_attempts=3, relax_aging_s=300, relax_usage_unit_s=600),
    )


async def make(store: Store, clock: Clock, **tiers: TierSpec) -> Scheduler:
    """A scheduler on ``store`` under :func:`settings_for`, loaded."""
    scheduler = Scheduler(store, settings_for(**tiers), now=clock)
    await scheduler.load()
    return scheduler
