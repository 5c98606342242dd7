"""Multi-prompts and ``--chaos`` on diffusers: blended prompt embeddings through compel, and a CFG scale per image
in one pipeline call. The rules are in :mod:`engine.prompt_weights`; engine process only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engine.families import FLOW_FAMILIES
from engine.prompt_syntax import a1111_to_compel
from engine.prompt_weights import ImageConditioning, Terms, image_cfgs
from engine.protocol import RenderTask

BLEND_FAMILIES = ("sd15", "sd2", "sdxl")
"""Families whose text encoders compel reads (their embeddings can be blended)."""


class PerImageGuidance(float):
    """A CFG scale per image for one pipeline call.

    diffusers' Stable Diffusion pipelines (SD1.x/2.x and SDXL; txt2img, img2img and inpaint) guide with
    ``uncond + self.guidance_scale * (text - uncond)`` on a batch of one row per image, and decide whether to guide
    at all by ``guidance_scale > 1``. As a float this is the largest scale (so guidance runs when any image needs
    it); multiplied by a tensor whose first dimension has one row per image, each row gets its own scale."""

    scales: tuple[float, ...]

    def __new__(cls, scales: Sequence[float]) -> PerImageGuidance:
        if not scales:
            raise ValueError("scales is empty; give one CFG scale per image")
        guidance = super().__new__(cls, max(scales))
        guidance.scales = tuple(float(scale) for scale in scales)
        return guidance

    def __mul__(self, other: Any) -> Any:
        if isinstance(other, torch.Tensor):
            if other.dim() == 0 or other.shape[0] != len(self.scales):
                raise ValueError(
                    f"a guidance of {len(self.scales)} images met a batch of shape {tuple(other.shape)}; "
                    "per-image CFG needs one row per image"
                )
            shape = (len(self.scales),) + (1,) * (other.dim() - 1)
            return torch.tensor(self.scales, dtype=other.dtype, device=other.device).reshape(shape) * other
        return float(self) * other

    __rmul__ = __mul__


def image_guidance(tasks: Sequence[RenderTask]) -> float:
    """The ``guidance_scale`` of one pipeline call for ``tasks``: the first task's CFG, or with ``--chaos`` a
    :class:`PerImageGuidance` of every image's own (:func:`engine.prompt_weights.chaos_cfg`)."""
    scales = image_cfgs(tasks)
    if all(scale == tasks[0].cfg for scale in scales):
        return tasks[0].cfg
    return PerImageGuidance(scales)


def _coefficients(sides: Sequence[Terms], index: dict[str, int]) -> torch.Tensor:
    matrix = torch.zeros(len(sides), len(index), dtype=torch.float32)
    for row, terms in enumerate(sides):
        for text, coefficient in terms:
            matrix[row, index[text]] += coefficient
    return matrix


def blended_embeddings(pipe: Any, family: str, conditionings: Sequence[ImageConditioning]) -> dict[str, Any]:
    """Pipeline keyword arguments (``prompt_embeds``, ``negative_prompt_embeds`` and on SDXL the pooled ones) with
    one row per image: each side the linear combination its terms give of the texts' compel embeddings (every
    text encoded once, in A1111 weighting syntax, long texts chunked; all padded to one length).

    The empty text is what the pipeline itself uses for "no negative prompt": its embedding, or zeros on SDXL
    models that zero an empty prompt (``force_zeros_for_empty_prompt``). Raises ValueError for a family compel
    cannot read."""
    if family in FLOW_FAMILIES:  # SD3, FLUX.1: their own encoders (T5), see engine.flow_prompts
        from engine.flow_prompts import flow_blended_embeddings

        return flow_blended_embeddings(pipe, family, conditionings)
    if family not in BLEND_FAMILIES:
        raise ValueError(
            f"multi-prompts (`::`) work on models of family {', '.join(BLEND_FAMILIES)}, not {family}; "
            "write the prompt without `::`"
        )
    from compel import CompelForSD, CompelForSDXL

    texts = list(
        dict.fromkeys(
            text
            for conditioning in conditionings
            for side in (conditioning.positive, conditioning.negative)
            for text, _c in side
        )
    )
    index = {text: position for position, text in enumerate(texts)}
    device = getattr(pipe, "_execution_device", None)
    wrapper = CompelForSDXL(pipe, device=device) if family == "sdxl" else CompelForSD(pipe, device=device)
    encoded = wrapper([a1111_to_compel(text) for text in texts])
    embeds: torch.Tensor = encoded.embeds
    pooled: torch.Tensor | None = encoded.pooled_embeds
    if family == "sdxl" and "" in index and getattr(pipe.config, "force_zeros_for_empty_prompt", False):
        embeds = embeds.clone()
        embeds[index[""]] = 0
        if pooled is not None:
            pooled = pooled.clone()
            pooled[index[""]] = 0
    kwargs: dict[str, Any] = {}
    for name, side in (("prompt_embeds", "positive"), ("negative_prompt_embeds", "negative")):
        matrix = _coefficients([getattr(conditioning, side) for conditioning in conditionings], index)
        matrix = matrix.to(embeds.device)
        kwargs[name] = torch.einsum("it,tld->ild", matrix, embeds.float()).to(embeds.dtype)
        if pooled is not None:
            kwargs[f"{'negative_' if side == 'negative' else ''}pooled_prompt_embeds"] = (matrix @ pooled.float()).to(
                pooled.dtype
            )
    return kwargs
