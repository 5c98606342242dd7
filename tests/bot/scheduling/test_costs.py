"""Costs: proportional to pixels x steps x images, times model, kind and lane multipliers."""

from __future__ import annotations

import pytest

from bot.jobs import Lane, RenderParams
from bot.scheduling.costs import job_cost, work_units
from config.policy import CreditsSettings

CREDITS = CreditsSettings()


def params(width: int = 512, height: int = 512, steps: int = 20, images: int = 1) -> RenderParams:
    return RenderParams("fox", "", "sd15", width, height, steps, 7.0, 1, images=images)


@pytest.mark.parametrize(
    ("job", "kind", "lane", "model", "expected"),
    [
        (params(), "imagine", Lane.FAST, 1.0, 1),  # the unit
        (params(images=4), "imagine", Lane.FAST, 1.0, 4),
        (params(images=4, steps=25), "imagine", Lane.FAST, 1.0, 5),
        (params(1024, 1024, 20, 4), "imagine", Lane.FAST, 1.0, 16),
        (params(images=4), "imagine", Lane.TURBO, 1.0, 8),  # turbo is double
        (params(images=4), "imagine", Lane.RELAX, 1.0, 0),  # relax is free
        (params(images=4), "imagine", Lane.FAST, 2.5, 10),  # model multiplier
        (params(images=4), "upscale", Lane.FAST, 1.0, 2),
        (params(images=4), "zoom", Lane.FAST, 1.0, 5),
        (params(64, 64, 4, 4), "imagine", Lane.FAST, 1.0, 1),  # tiny work still costs min_cost
    ],
)
def test_cost_table(job: RenderParams, kind: str, lane: Lane, model: float, expected: int) -> None:
    """One row per rule: work, lane, model and kind multipliers, and the minimum."""
    assert job_cost(job, kind=kind, lane=lane, model_multiplier=model, credits=CREDITS) == expected


def test_unknown_kind_is_named() -> None:
    """A kind without a configured cost is a configuration error that names the setting."""
    with pytest.raises(ValueError, match=r"credits\.kind_multipliers"):
        job_cost(params(), kind="hologram", lane=Lane.FAST, model_multiplier=1.0, credits=CREDITS)


def test_work_units_and_total() -> None:
    """Work is relative to one 512x512 image at 20 steps; repeats are summed up front."""
    assert work_units(512, 512, 20, 1, CREDITS) == 1.0
    assert work_units(512, 512, 40, 2, CREDITS) == 4.0
    with pytest.raises(ValueError, match="positive"):
        work_units(0, 512, 20, 1, CREDITS)


def test_a_sweep_costs_the_work_of_its_cells() -> None:
    """Each cell is one image at its own steps: a steps sweep is priced by the swept steps, not the model default."""
    sweep = (("steps", ("10", "60")), ("seed", tuple(str(seed) for seed in range(32))))
    swept = RenderParams("fox", "", "sd15", 512, 512, 25, 7.0, 1, images=1, sweep=sweep)
    # 32 cells at 10 steps + 32 at 60 steps = 32 * 70 steps of one 512² image = 112 units.
    assert job_cost(swept, kind="sweep", lane=Lane.FAST, model_multiplier=1.0, credits=CREDITS) == 112
    cfg_only = RenderParams("fox", "", "sd15", 512, 512, 20, 7.0, 1, images=1, sweep=(("cfg", ("3", "5", "7")),))
    assert job_cost(cfg_only, kind="sweep", lane=Lane.FAST, model_multiplier=1.0, credits=CREDITS) == 3
    assert job_cost(cfg_only, kind="sweep", lane=Lane.TURBO, model_multiplier=1.0, credits=CREDITS) == 6
