"""What a model's family can do, checked against a request before anything is charged: a LoRA tag, prompt weights,
a multi-prompt, ``--no``, ``--chaos``, ``--tile``, a control image or image prompts on a model whose family has no
use for them (SD3, FLUX.1) is refused with what to change. The rules are :mod:`engine.families`' (the engine checks
a task with the same ones)."""

from __future__ import annotations

from bot.errors import PromptError
from bot.jobs import RenderParams
from config.model_registry import ModelSpec
from engine.families import family_refusal


def check_family_support(
    params: RenderParams, spec: ModelSpec, name: str, *, control: bool = False, image_prompts: bool = False
) -> None:
    """Raise PromptError (naming the flag) for the first thing ``params`` asks that model ``name``'s family cannot
    do; ``control``/``image_prompts``: the request has a control image / image prompts (links or attachments)."""
    refusal = family_refusal(
        spec.family,
        name,
        prompt=params.prompt,
        negative_prompt=params.negative_prompt,
        multi_prompt=bool(params.weighted_prompts),
        chaos=params.chaos,
        tile=params.tile,
        control=control,
        image_prompts=image_prompts,
    )
    if refusal is not None:
        raise PromptError(refusal.message, flag=refusal.flag)
