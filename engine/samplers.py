"""Sampler names members type, mapped to diffusers schedulers, with the labels A1111 writes for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TRAILING = (("timestep_spacing", "trailing"),)
"""Timesteps spaced from the end of training's schedule, so the first step starts from pure noise (999): what
distilled few-step models (SD-Turbo, SDXL-Turbo) are sampled with, as their model cards and repositories do."""


@dataclass(frozen=True)
class Sampler:
    """One sampler: its name in prompts, its A1111 label, the diffusers scheduler class and its options.

    ``schedule`` is A1111's *Schedule type* when it is not the sampler's usual one (``SGM Uniform`` is A1111's
    name for timesteps spaced evenly from the end, diffusers' ``trailing``); empty otherwise."""

    name: str
    label: str
    scheduler: str
    options: tuple[tuple[str, Any], ...] = ()
    schedule: str = ""


SAMPLERS: dict[str, Sampler] = {
    sampler.name: sampler
    for sampler in (
        Sampler("euler_a", "Euler a", "EulerAncestralDiscreteScheduler"),
        Sampler("euler", "Euler", "EulerDiscreteScheduler"),
        Sampler("dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler"),
        Sampler(
            "dpmpp_2m_karras",
            "DPM++ 2M Karras",
            "DPMSolverMultistepScheduler",
            (("use_karras_sigmas", True),),
        ),
        Sampler("ddim", "DDIM", "DDIMScheduler"),
        Sampler("unipc", "UniPC", "UniPCMultistepScheduler"),
        Sampler("lcm", "LCM", "LCMScheduler"),
        Sampler("euler_a_trailing", "Euler a", "EulerAncestralDiscreteScheduler", TRAILING, "SGM Uniform"),
        Sampler("euler_trailing", "Euler", "EulerDiscreteScheduler", TRAILING, "SGM Uniform"),
    )
}


DEFAULT_SAMPLER = "euler_a"


def sampler_label(name: str) -> str:
    """The A1111 label for a sampler name (``euler_a`` -> ``Euler a``); unknown names come back as given."""
    sampler = SAMPLERS.get(name)
    return sampler.label if sampler else name


def schedule_label(name: str) -> str:
    """A1111's *Schedule type* of a sampler name (``euler_a_trailing`` -> ``SGM Uniform``); empty when the sampler
    uses its usual schedule or is unknown."""
    sampler = SAMPLERS.get(name)
    return sampler.schedule if sampler else ""


def make_scheduler(name: str, base_config: Any) -> Any:
    """A fresh diffusers scheduler for ``name`` built from the pipeline's scheduler config."""
    sampler = SAMPLERS.get(name)
    if sampler is None:
        raise ValueError(f"unknown sampler {name!r}; use one of: {', '.join(SAMPLERS)}")
    import diffusers

    scheduler_class = getattr(diffusers, sampler.scheduler)
    return scheduler_class.from_config(base_config, **dict(sampler.options))
