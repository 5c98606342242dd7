"""What a model's family can do, checked against a request before anything is charged: a LoRA tag (on a family
without LoRAs, or of a LoRA made for another family), prompt weights, a multi-prompt (or its negative parts),
``--no``, ``--chaos``, ``--tile``, a control image or image prompts on a model whose family has no use for them
(SD3, FLUX.1), and a prompt with more words than the model's T5 reads, are refused with what to change. The rules are
:mod:`engine.families`' (the engine checks a task with the same ones, and counts T5 tokens exactly)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.errors import PromptError
from bot.jobs import RenderParams
from config.model_registry import LoraSpec, ModelSpec
from engine.families import request_refusal, t5_token_limit


def model_t5_limit(spec: ModelSpec) -> int:
    """The T5 tokens a prompt of model ``spec`` may have (0: it reads no T5): a FLUX.1 model without guidance
    (``max_cfg`` 0, FLUX.1-schnell) reads fewer."""
    return t5_token_limit(spec.family, guidance=spec.takes_guidance)


def check_family_support(
    params: RenderParams,
    spec: ModelSpec,
    name: str,
    *,
    control: bool = False,
    image_prompts: bool = False,
    loras: Mapping[str, LoraSpec] | None = None,
) -> None:
    """Raise PromptError (naming the flag) for the first thing ``params`` asks that model ``name``'s family cannot
    do; ``control``/``image_prompts``: the request has a control image / image prompts (links or attachments);
    ``loras``: the configured LoRAs (a LoRA whose ``family`` is another is refused)."""
    refusal = request_refusal(
        spec.family,
        name,
        params,
        control=control,
        image_prompts=image_prompts,
        lora_families={lora: entry.family or "" for lora, entry in (loras or {}).items()},
        t5_limit=model_t5_limit(spec),
    )
    if refusal is not None:
        raise PromptError(refusal.message, flag=refusal.flag)
