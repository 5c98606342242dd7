"""What a model's family can do, checked against a request before anything is charged: a LoRA tag (on a family
without LoRAs, or of a LoRA made for another family), prompt weights, a multi-prompt (or its negative parts),
``--no``, ``--chaos``, ``--tile``, a control image or image prompts on a model whose family has no use for them
(SD3, FLUX.1), and a prompt longer than the model's T5 reads, are refused with what to change. The rules are
:mod:`engine.families`' (the engine checks a task with the same ones). T5 tokens are counted exactly with the
model's tokenizer file where it is on this machine (:mod:`bot.requests.t5_tokens`), else as words (a lower bound)."""

from __future__ import annotations

from bot.errors import PromptError
from bot.jobs import RenderParams
from bot.requests.t5_tokens import t5_token_counts, t5_tokenizer_file
from config.model_registry import ModelSpec
from config.settings import Settings
from engine.families import request_refusal, t5_texts, t5_token_limit, t5_too_long


def model_t5_limit(spec: ModelSpec) -> int:
    """The T5 tokens a prompt of model ``spec`` may have (0: it reads no T5): a FLUX.1 model without guidance
    (``max_cfg`` 0, FLUX.1-schnell) reads fewer."""
    return t5_token_limit(spec.family, guidance=spec.takes_guidance)


def check_family_support(
    params: RenderParams, settings: Settings, *, control: bool = False, image_prompts: bool = False
) -> None:
    """Raise PromptError (naming the flag) for the first thing ``params`` asks that its model's family cannot do;
    ``control``/``image_prompts``: the request has a control image / image prompts (links or attachments). A
    configured LoRA whose ``family`` is another is refused."""
    name = params.model
    spec = settings.registry[name]
    limit = model_t5_limit(spec)
    tokenizer = t5_tokenizer_file(spec, settings.models_dir) if limit else None
    refusal = request_refusal(
        spec.family,
        name,
        params,
        control=control,
        image_prompts=image_prompts,
        lora_families={lora: entry.family or "" for lora, entry in settings.loras.items()},
        t5_limit=0 if tokenizer is not None else limit,  # counted exactly below
    )
    if refusal is not None:
        raise PromptError(refusal.message, flag=refusal.flag)
    if tokenizer is not None:
        try:
            counts = t5_token_counts(tokenizer, t5_texts(params))
        except (OSError, ValueError):  # an unreadable file: the engine counts with the model's own tokenizer
            return
        if max(counts) > limit:
            raise PromptError(t5_too_long(name, limit, max(counts)), flag="prompt")
