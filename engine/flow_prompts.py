"""Prompts on SD3/SD3.5 and FLUX.1: T5 reads them (up to the model's ``max_sequence_length``), so a prompt longer
than that is refused with the limit instead of being cut short, and multi-prompts (``a cat:: a dog::2``) are blends
of each part's own embeddings. Engine process only; the rules are in :mod:`engine.families` and
:mod:`engine.prompt_weights`.

A blend encodes every distinct text once with the pipeline's own ``encode_prompt`` (CLIP and T5, as a plain prompt
is), then gives each image the linear combination its terms say of the T5 sequence embeddings and of the pooled CLIP
embeddings (the positive coefficients add up to 1: the weights normalised by the sum of the positive ones).
SD3 guides with classifier-free guidance, so its negative side (negative parts and ``--no``) is a combination too;
FLUX.1 has no negative prompt (negative parts are refused before they get here), so it gets the positive side only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from engine.families import t5_texts, t5_too_long
from engine.flow_families import sequence_length
from engine.prompt_weights import ImageConditioning, Terms
from engine.protocol import RenderTask

log = logging.getLogger(__name__)


def t5_tokenizer(family: str, pipe: Any) -> Any:
    """The pipeline's T5 tokenizer (SD3's third, FLUX.1's second), or None (an SD3 loaded without T5)."""
    return getattr(pipe, "tokenizer_3" if family == "sd3" else "tokenizer_2", None)


def prompt_texts(tasks: Sequence[RenderTask]) -> list[str]:
    """The texts T5 reads for ``tasks`` (:func:`engine.families.t5_texts`: the bot counts the same ones)."""
    return [text for task in tasks for text in t5_texts(task)]


def check_t5_length(family: str, pipe: Any, model: str, texts: Sequence[str]) -> None:
    """Raise ValueError saying the limit when a text has more T5 tokens (``</s>`` included) than the model reads;
    nothing for a family without T5."""
    limit = sequence_length(family, pipe)
    tokenizer = t5_tokenizer(family, pipe)
    if limit <= 0 or tokenizer is None:
        return
    for text in dict.fromkeys(texts):
        tokens = len(tokenizer(text).input_ids)
        if tokens > limit:
            raise ValueError(t5_too_long(model, limit, tokens))


def _matrix(sides: Sequence[Terms], index: dict[str, int]) -> torch.Tensor:
    """Row i: the coefficient of each encoded text in side i."""
    matrix = torch.zeros(len(sides), len(index), dtype=torch.float32)
    for row, terms in enumerate(sides):
        for text, coefficient in terms:
            matrix[row, index[text]] += coefficient
    return matrix


def _mix(matrix: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
    """The rows of ``matrix`` applied to the first dimension of ``encoded`` (sequence or pooled embeddings)."""
    mixed = torch.tensordot(matrix.to(encoded.device), encoded.float(), dims=([1], [0]))
    return mixed.to(encoded.dtype)


def flow_blended_embeddings(pipe: Any, family: str, conditionings: Sequence[ImageConditioning]) -> dict[str, Any]:
    """Pipeline keyword arguments with one row per image (module docstring): ``prompt_embeds`` and
    ``pooled_prompt_embeds``, and on SD3 the negative ones."""
    sides = ("positive", "negative") if family == "sd3" else ("positive",)
    texts = list(
        dict.fromkeys(
            text for conditioning in conditionings for side in sides for text, _c in getattr(conditioning, side)
        )
    )
    index = {text: position for position, text in enumerate(texts)}
    length = sequence_length(family, pipe)
    device = getattr(pipe, "_execution_device", None)
    if family == "sd3":
        embeds, _negative, pooled, _negative_pooled = pipe.encode_prompt(
            prompt=texts,
            prompt_2=None,
            prompt_3=None,
            device=device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
            max_sequence_length=length,
        )
    else:
        embeds, pooled, _text_ids = pipe.encode_prompt(
            prompt=texts, prompt_2=None, device=device, num_images_per_prompt=1, max_sequence_length=length
        )
    log.debug("blended %d texts of %s prompts into %d images", len(texts), family, len(conditionings))
    kwargs: dict[str, Any] = {}
    for side in sides:
        prefix = "negative_" if side == "negative" else ""
        matrix = _matrix([getattr(conditioning, side) for conditioning in conditionings], index)
        kwargs[f"{prefix}prompt_embeds"] = _mix(matrix, embeds)
        kwargs[f"{prefix}pooled_prompt_embeds"] = _mix(matrix, pooled)
    return kwargs
