"""What a job costs, in credits: pure functions of the job's work, its model, its kind and its lane.

One unit of work is one image of ``unit_pixels`` at ``unit_steps`` (512x512 at 20 steps by default). A job costs
``work / unit x credits_per_unit x model cost_multiplier x kind multiplier x lane multiplier``, rounded up, and
at least ``min_cost`` unless the result is exactly free (relax, or an unlimited tier).
"""

from __future__ import annotations

import math

from bot.jobs import Lane, RenderParams
from bot.requests.sweep_spec import cell_steps
from config.policy import CreditsSettings
from engine.prompt_weights import stopped_steps


def lane_multiplier(lane: Lane, credits: CreditsSettings) -> float:
    """turbo costs double, fast the base price, relax nothing (by default)."""
    return {
        Lane.TURBO: credits.turbo_multiplier,
        Lane.FAST: credits.fast_multiplier,
        Lane.RELAX: credits.relax_multiplier,
    }[lane]


def kind_multiplier(kind: str, credits: CreditsSettings) -> float:
    """The factor of a job kind (upscale, variation, zoom, pan ...); an unknown kind is a configuration bug."""
    try:
        return credits.kind_multipliers[str(kind)]
    except KeyError:
        known = ", ".join(sorted(credits.kind_multipliers))
        raise ValueError(
            f"no cost is configured for job kind {kind!r}; add it to credits.kind_multipliers ({known})"
        ) from None


def work_units(width: int, height: int, steps: int, images: int, credits: CreditsSettings) -> float:
    """Pixels x steps x images, in units of one ``unit_pixels`` image at ``unit_steps``."""
    if width <= 0 or height <= 0 or steps <= 0 or images <= 0:
        raise ValueError(
            f"work needs positive width, height, steps and images, got {width}x{height}, {steps}, {images}"
        )
    return (width * height * steps * images) / (credits.unit_pixels * credits.unit_steps)


def job_work(params: RenderParams, credits: CreditsSettings) -> float:
    """The work a job really does: a sweep is the sum of its cells, each at its own (maybe swept) steps; with
    ``--stop`` only the steps that run (:func:`engine.prompt_weights.stopped_steps`)."""
    if not params.sweep:
        return work_units(params.width, params.height, stopped_steps(params.steps, params.stop), params.images, credits)
    return sum(
        work_units(params.width, params.height, stopped_steps(steps, params.stop), params.images, credits)
        for steps in cell_steps(params.sweep, params.steps)
    )


def job_cost(
    params: RenderParams,
    *,
    kind: str,
    lane: Lane,
    model_multiplier: float,
    credits: CreditsSettings,
) -> int:
    """The credits one job costs (0 for a free lane)."""
    factor = model_multiplier * kind_multiplier(kind, credits) * lane_multiplier(lane, credits)
    if factor == 0:
        return 0
    raw = job_work(params, credits) * credits.credits_per_unit
    # Round away float noise before ceil so that exactly 5.0 never becomes 6.
    return max(credits.min_cost, math.ceil(round(raw * factor, 9)))
