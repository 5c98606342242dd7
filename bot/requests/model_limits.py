"""What a model lets a job ask for: its own steps, CFG and sampler limits (a distilled model such as SD-Turbo or an
LCM-LoRA model renders in 1 to 8 steps, without or with little guidance, with its one kind of sampler), and when a
negative prompt can work. Pure functions of a parsed prompt and the model's registry entry.

A value typed as a flag that the model does not allow is refused, naming the limit, before anything is charged. A
value that came from the member's /settings (their default steps or sampler for every model) and that this model
does not allow gives way to the model's own default instead: it was not asked of this model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.errors import PromptError
from bot.jobs import RenderParams
from bot.requests.prompt import MAX_CFG, ParsedPrompt
from bot.requests.sweep_spec import SweepLimits
from config.model_registry import ModelSpec
from engine.samplers import SAMPLERS

GUIDANCE_ABOVE = 1.0
"""diffusers runs classifier-free guidance (the only thing that reads a negative prompt) only when the CFG scale is
above this; at or below it the negative prompt is not used at all."""


def model_steps(parsed: ParsedPrompt, spec: ModelSpec, name: str, server_max_steps: int) -> int:
    """The job's steps: the asked ones within the model's limit, else the model's default. Raises PromptError for
    a typed ``--steps`` above the limit."""
    if parsed.steps is None:
        return spec.steps
    limit = spec.step_limit(server_max_steps)
    if parsed.steps <= limit:
        return parsed.steps
    if "steps" not in parsed.flags:  # the member's /settings default, not asked of this model
        return spec.steps
    raise PromptError(
        f"`--steps {parsed.steps}` is more than model `{name}` allows: use --steps N with N from 1 to {limit}",
        flag="steps",
    )


def model_cfg(parsed: ParsedPrompt, spec: ModelSpec, name: str) -> float:
    """The job's CFG scale: the asked one within the model's limit, else the model's default. Raises PromptError
    for a ``--cfg`` above the limit."""
    if parsed.cfg is None:
        return spec.cfg
    limit = spec.cfg_limit(MAX_CFG)
    if limit == 0 and parsed.cfg > 0:  # a distilled model with no guidance at all (FLUX.1-schnell)
        raise PromptError(
            f"`--cfg` does nothing on model `{name}`: it renders without guidance; remove --cfg", flag="cfg"
        )
    if parsed.cfg > limit:
        raise PromptError(
            f"`--cfg {parsed.cfg:g}` is more than model `{name}` allows: use --cfg X with X from 0 to {limit:g}",
            flag="cfg",
        )
    return parsed.cfg


def model_sampler(parsed: ParsedPrompt, spec: ModelSpec, name: str) -> str:
    """The job's sampler: the asked one when the model allows it, else the model's default. Raises PromptError for
    a typed ``--sampler`` the model does not work with."""
    if parsed.sampler is None:
        return spec.default_sampler
    if spec.allows_sampler(parsed.sampler):
        return parsed.sampler
    if "sampler" not in parsed.flags:  # the member's /settings default, not asked of this model
        return spec.default_sampler
    raise PromptError(
        f"`--sampler {parsed.sampler}` does not work with model `{name}`: use --sampler NAME with one of "
        f"{', '.join(spec.samplers)}",
        flag="sampler",
    )


def model_sweep_limits(spec: ModelSpec, server_max_steps: int) -> SweepLimits:
    """A sweep's values obey the same limits as the flags they stand for, on this model."""
    return SweepLimits(
        max_steps=spec.step_limit(server_max_steps),
        max_cfg=spec.cfg_limit(MAX_CFG),
        samplers=tuple(spec.samplers) if spec.samplers else tuple(SAMPLERS),
    )


def job_cfgs(params: RenderParams) -> list[float]:
    """Every CFG scale a job renders at: a cfg sweep's values, or the job's own."""
    for axis, values in params.sweep:
        if axis == "cfg":
            return [float(value) for value in values]
    return [params.cfg]


def check_negative_prompt(params: RenderParams, spec: ModelSpec, name: str) -> None:
    """A negative prompt (``--no``) needs guidance: refused, before anything is charged, on a job none of whose
    images is rendered at a CFG scale above 1, where it would be ignored."""
    if not params.negative_prompt or any(cfg > GUIDANCE_ABOVE for cfg in job_cfgs(params)):
        return
    limit = spec.cfg_limit(MAX_CFG)
    if limit <= GUIDANCE_ABOVE:
        raise PromptError(
            f"`--no` has no effect on model `{name}`: it renders without guidance (--cfg at most {limit:g}), and a "
            "negative prompt needs --cfg above 1; remove --no and say what you want in the prompt",
            flag="no",
        )
    raise PromptError(
        f"`--no` has no effect at --cfg {params.cfg:g}: a negative prompt needs --cfg above 1; raise --cfg "
        f"(up to {limit:g} on model `{name}`) or remove --no",
        flag="no",
    )


Guidance = Literal["cfg", "distilled", "none"]


@dataclass(frozen=True)
class ModelChoice:
    """What a member may ask of one model, for a surface that offers the choice (the web UI's options, the API)."""

    name: str
    family: str
    base_size: int
    steps: int
    max_steps: int
    cfg: float
    max_cfg: float
    guidance: Guidance
    """``cfg``: classifier-free guidance (``--cfg`` is the CFG scale, ``--no`` works); ``distilled``: ``--cfg`` is a
    distilled guidance input (FLUX.1-dev) and there is no negative prompt; ``none``: no guidance (FLUX.1-schnell)."""
    sampler: str
    samplers: tuple[str, ...]

    @property
    def negative_prompt(self) -> bool:
        """Whether ``--no`` works on it."""
        return self.guidance == "cfg"


def model_choice(name: str, spec: ModelSpec, server_max_steps: int) -> ModelChoice:
    """Model ``name``'s defaults and limits as :func:`model_steps`, :func:`model_cfg` and :func:`model_sampler`
    apply them."""
    guidance: Guidance = "cfg" if not spec.distilled_guidance else ("distilled" if spec.takes_guidance else "none")
    return ModelChoice(
        name=name,
        family=spec.family,
        base_size=spec.base_size,
        steps=spec.steps,
        max_steps=spec.step_limit(server_max_steps),
        cfg=spec.cfg,
        max_cfg=spec.cfg_limit(MAX_CFG),
        guidance=guidance,
        sampler=spec.default_sampler,
        samplers=tuple(spec.samplers) if spec.samplers else tuple(SAMPLERS),
    )
