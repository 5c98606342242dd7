"""The multi-prompt (``::``), ``--q``, ``--chaos`` and ``--stop`` rules that need the job's model and options: pure
functions of a parsed prompt, the job's parameters and the model's registry entry, run before anything is charged.

The flags' own forms are checked by the parser (:mod:`bot.requests.multi_prompt`); here a flag meets the model's
limits (``--q 2`` may make more steps than the model allows) and the rest of the request (a negative part needs
guidance, as ``--no`` does).
"""

from __future__ import annotations

from typing import Any

from bot.errors import PromptError
from bot.jobs import RenderParams
from bot.requests.model_limits import GUIDANCE_ABOVE, job_cfgs
from bot.requests.multi_prompt import quality_steps
from bot.requests.prompt import MAX_CFG, ParsedPrompt
from config.model_registry import ModelSpec


def prompt_flag_fields(parsed: ParsedPrompt) -> dict[str, Any]:
    """The fields of a job's parameters the multi-prompt, ``--chaos`` and ``--stop`` set (their defaults when
    not used)."""
    return {"weighted_prompts": parsed.weighted_prompts, "chaos": parsed.chaos, "stop": parsed.stop}


def part_texts(params: RenderParams) -> list[str]:
    """Each part of a multi-prompt on its own, for moderation (empty for a plain prompt)."""
    return [text for text, _weight in params.weighted_prompts]


def quality_applied(parsed: ParsedPrompt, steps: int, spec: ModelSpec, name: str, server_max_steps: int) -> int:
    """The job's steps with ``--q`` applied (``steps`` itself without it). Raises PromptError when that is more
    steps than model ``name`` allows."""
    if parsed.quality is None or parsed.quality == 1:
        return steps
    multiplied = quality_steps(steps, parsed.quality)
    limit = spec.step_limit(server_max_steps)
    if multiplied > limit:
        raise PromptError(
            f"`--q {parsed.quality:g}` makes {multiplied} steps ({steps} × {parsed.quality:g}), more than model "
            f"`{name}` allows ({limit}): use a lower --q or fewer --steps",
            flag="q",
        )
    return multiplied


def check_prompt_flags(parsed: ParsedPrompt, params: RenderParams, spec: ModelSpec, name: str) -> None:
    """The flags against the whole request, once its options (a sweep) are applied. Raises PromptError for a
    negative part without guidance, a ``prompt=`` sweep of a multi-prompt, ``--q`` with a steps sweep and a
    ``--chaos`` that could change nothing."""
    guided = any(cfg > GUIDANCE_ABOVE for cfg in job_cfgs(params))
    limit = spec.cfg_limit(MAX_CFG)
    negative = next(((text, weight) for text, weight in params.weighted_prompts if weight < 0), None)
    if negative is not None and not guided:
        part = f"`{negative[0]}::{negative[1]:g}`"
        if limit <= GUIDANCE_ABOVE:
            raise PromptError(
                f"a negative weight ({part}) has no effect on model `{name}`: it renders without guidance (--cfg at "
                f"most {limit:g}); remove the negative part",
                flag="::",
            )
        raise PromptError(
            f"a negative weight ({part}) has no effect at --cfg {params.cfg:g}: it needs --cfg above 1; raise --cfg "
            f"(up to {limit:g} on model `{name}`) or remove the negative part",
            flag="::",
        )
    axes = {axis for axis, _values in params.sweep}
    if params.weighted_prompts and "prompt" in axes:
        raise PromptError(
            "a `prompt=` sweep cannot change a multi-prompt (`::`): sweep another axis, or write the prompt "
            "without `::`",
            flag="sweep",
        )
    if parsed.quality is not None and parsed.quality != 1 and "steps" in axes:
        raise PromptError("`--q` and a steps sweep both set the steps: give the steps in the sweep only", flag="q")
    if params.chaos and not guided and len(params.weighted_prompts) < 2:
        raise PromptError(
            f"`--chaos` has no effect here: it varies the CFG scale, which needs --cfg above 1 (model `{name}` "
            f"allows up to {limit:g}), and the weights of a multi-prompt's parts; remove --chaos",
            flag="chaos",
        )
