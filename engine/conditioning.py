"""Prompt embeddings through compel (A1111 weights, prompts past 77 tokens) and LoRA loading per job."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.flow_families import denoiser
from engine.memory import qkv_unfused
from engine.model_sources import lora_problem
from engine.prompt_syntax import a1111_to_compel, has_weighting
from engine.protocol import LoraEntry

log = logging.getLogger(__name__)


def needs_compel(pipe: Any, prompts: Sequence[str]) -> bool:
    """Compel is used only where it changes something: weighting syntax or a prompt past the token limit."""
    tokenizer = pipe.tokenizer
    limit = tokenizer.model_max_length - 2
    return any(has_weighting(text) or len(tokenizer(text).input_ids) - 2 > limit for text in prompts)


def compel_embeddings(pipe: Any, family: str, prompts: list[str], negatives: list[str] | None) -> dict[str, Any]:
    """Pipeline keyword arguments (``prompt_embeds`` …) for ``prompts`` written in A1111 syntax."""
    from compel import CompelForSD, CompelForSDXL

    device = getattr(pipe, "_execution_device", None)
    wrapper = CompelForSDXL(pipe, device=device) if family == "sdxl" else CompelForSD(pipe, device=device)
    translated = [a1111_to_compel(text) for text in prompts]
    negative = [a1111_to_compel(text) for text in negatives] if negatives else [""] * len(prompts)
    conditioning = wrapper(translated, negative)
    kwargs: dict[str, Any] = {
        "prompt_embeds": conditioning.embeds,
        "negative_prompt_embeds": conditioning.negative_embeds,
    }
    if family == "sdxl":
        kwargs["pooled_prompt_embeds"] = conditioning.pooled_embeds
        kwargs["negative_pooled_prompt_embeds"] = conditioning.negative_pooled_embeds
    return kwargs


@contextlib.contextmanager
def loras_applied(
    pipe: Any, requested: Sequence[tuple[str, float]], known: Sequence[LoraEntry], family: str = ""
) -> Iterator[None]:
    """Load and weight the requested LoRAs for the duration of one job, then unload them (the next job is clean).

    Raises ValueError for a name that is not in the registry, or whose file is missing: a LoRA's path is always a
    local file, never handed to diffusers as a hub repository id, and for a LoRA made for another ``family`` than the
    model's (diffusers would load what matches and drop the rest). The message reaches the member, so it names no
    path; the log has it for the owner.
    """
    if not requested:
        yield
        return
    by_name = {entry.name: entry for entry in known}
    for name, _weight in requested:
        if name not in by_name:
            choices = ", ".join(sorted(by_name)) or "none are configured"
            raise ValueError(f"unknown LoRA {name!r} in <lora:{name}:…>; known LoRAs: {choices}")
        problem = lora_problem(by_name[name].path)
        if problem is not None:
            log.error("LoRA %s cannot be loaded: %s; fix [loras.%s] path in the configuration", name, problem, name)
            raise ValueError(
                f"LoRA {name} is not available on this server (its file is missing); "
                f"the owner can fix [loras.{name}] path in the configuration"
            )
        if family and by_name[name].family and by_name[name].family != family:
            raise ValueError(
                f"LoRA {name} is for {by_name[name].family} models, not {family}: use a LoRA made for {family}"
            )
    names: list[str] = []
    with qkv_unfused(denoiser(pipe)):  # LoRAs load into to_q/to_k/to_v, which fused attention does not use
        try:
            for index, (name, _weight) in enumerate(requested):
                adapter = f"{name}_{index}"
                pipe.load_lora_weights(str(Path(by_name[name].path).expanduser()), adapter_name=adapter)
                names.append(adapter)
            pipe.set_adapters(names, adapter_weights=[weight for _name, weight in requested])
            yield
        finally:
            if names:
                pipe.unload_lora_weights()
