"""What jobs cost, member tiers and their limits, and how the scheduler shares the GPU."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from config.errors import did_you_mean, top_level_hint


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
    "control": 1.5,  # ControlNet: its encoder runs beside the UNet's at every step
    "blend": 1.0,
    "describe": 0.5,
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
        from config.settings import Settings  # the section's parent, which imports this module

        for kind in value:
            if kind in Settings.model_fields and kind not in DEFAULT_KIND_MULTIPLIERS:  # [describe] is both
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
