"""Sampler names members type, mapped to diffusers schedulers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sampler:
    name: str
    label: str
    scheduler: str
    options: tuple[tuple[str, Any], ...] = ()


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
    )
}


DEFAULT_SAMPLER = "euler_a"


def sampler_label(name: str) -> str:
    """The A1111 label for a sampler name (``euler_a`` -> ``Euler a``); unknown names come back as given."""
    sampler = SAMPLERS.get(name)
    return sampler.label if sampler else name


def make_scheduler(name: str, base_config: Any) -> Any:
    """A fresh diffusers scheduler for ``name`` built from the pipeline's scheduler config."""
    sampler = SAMPLERS.get(name)
    if sampler is None:
        raise ValueError(f"unknown sampler {name!r}; use one of: {', '.join(SAMPLERS)}")
    import diffusers

    scheduler_class = getattr(diffusers, sampler.scheduler)
    return scheduler_class.from_config(base_config, **dict(sampler.options))
