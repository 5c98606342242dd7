"""Midjourney's multi-prompt weights, ``--chaos`` and ``--stop`` as pure rules, shared by the bot (pricing) and the
engine (rendering). No torch here.

Multi-prompts (``a cat:: a dog::2``) render each image from a blend of the parts' prompt embeddings:

- Weights are relative, as Midjourney's: multiplying every weight by one number changes nothing.
- The positive conditioning is the weighted mean of the positive parts' embeddings.
- Negative parts push away, as ``--no`` does; ``--no words`` counts as one more part ``words::-0.5``. Their
  weighted mean ``N`` is blended with the empty prompt's embedding ``U`` (the unconditional side of classifier-free
  guidance) as ``U + s (N - U)``, with the strength ``s = A / (0.5 P)``: ``A`` the sizes of the negative weights
  added up, ``P`` the positive weights added up. So ``a cat:: blur::-0.5`` is exactly ``a cat --no blur``
  (``s = 1``: the negative prompt is ``blur``), ``blur::-0.25`` is half as strong, and ``s`` never exceeds
  :data:`MAX_NEGATIVE_STRENGTH` (the parser keeps the weights' total above 0, so ``s < 2``).

``--chaos N`` varies the four images beyond their seeds, reproducibly: see :func:`chaos_draws`.
``--stop N`` ends the denoising after :func:`stopped_steps` of the steps and decodes what is there.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from engine.prompt_syntax import LORA_TAG
from engine.protocol import RenderTask

FULL_STOP = 100
"""``--stop 100``: every step runs (the default)."""
MAX_CHAOS = 100
NO_WEIGHT = -0.5
"""The weight ``--no words`` has as a part of a multi-prompt (Midjourney's rule: ``--no x`` is ``x::-0.5``)."""
MAX_NEGATIVE_STRENGTH = 2.0
"""The most the negative side is pushed away (``s`` above); reached only when ``--chaos`` jitters weights."""
MAX_CHAOS_CFG = 30.0
"""A jittered CFG scale never goes above this (the highest ``--cfg``)."""
GUIDANCE_ABOVE = 1.0
"""Classifier-free guidance runs only above this CFG scale; ``--chaos`` leaves a scale at or below it alone."""

Terms = tuple[tuple[str, float], ...]
"""A linear combination of prompt embeddings: each text and its coefficient."""


@dataclass(frozen=True)
class ImageConditioning:
    """What one image is conditioned on: the positive and the negative side, each a combination of the embeddings
    of some texts whose coefficients add up to 1 (the negative one may extrapolate: a coefficient below 0)."""

    positive: Terms
    negative: Terms


def stopped_steps(steps: int, stop: int) -> int:
    """The denoising steps a job at ``--stop stop`` runs: ``stop`` percent of ``steps`` rounded up, at least 1.

    The one rule for what runs and what is charged (``--stop 50`` of 25 steps runs and costs 13). Raises
    ValueError for a stop outside 1..100."""
    if not 0 < stop <= FULL_STOP:
        raise ValueError(f"stop={stop} must be from 1 to {FULL_STOP}")
    if stop == FULL_STOP:
        return steps
    return max(1, -(-steps * stop // FULL_STOP))


def chaos_draws(seed: int, count: int) -> list[float]:
    """``count`` numbers ``u`` in [-0.5, 0.5), the same for the same seed on every machine and Python version.

    The rule of ``--chaos C`` for the image rendered with ``seed``: the first draw ``u0`` moves its CFG scale, the
    next ones ``u1, u2, ...`` the weights of the multi-prompt's parts, in the order they were typed::

        cfg'  = 1 + (cfg - 1) * (1 + C/100 * u0)        (only when cfg > 1: guidance stays on, never turns on)
        w_i'  = w_i * (1 + C/100 * u_i)                 (a weight keeps its sign)

    so at ``--chaos 100`` a value moves by up to half of itself, at ``--chaos 0`` not at all. The draws come from
    Python's ``random.Random(seed).random()``, whose sequence for an integer seed Python guarantees to keep."""
    generator = random.Random(seed)
    return [generator.random() - 0.5 for _ in range(count)]


def chaos_cfg(cfg: float, chaos: int, seed: int) -> float:
    """The CFG scale of the image rendered with ``seed`` at ``--chaos chaos`` (see :func:`chaos_draws`), rounded to
    two decimals (what its metadata says is exactly what rendered), at most :data:`MAX_CHAOS_CFG`."""
    if chaos <= 0 or cfg <= GUIDANCE_ABOVE:
        return cfg
    (draw,) = chaos_draws(seed, 1)
    jittered = 1 + (cfg - 1) * (1 + chaos / MAX_CHAOS * draw)
    return round(min(MAX_CHAOS_CFG, jittered), 2)


def chaos_weights(weights: Sequence[float], chaos: int, seed: int) -> tuple[float, ...]:
    """The multi-prompt weights of the image rendered with ``seed`` at ``--chaos chaos`` (see :func:`chaos_draws`)."""
    if chaos <= 0:
        return tuple(weights)
    draws = chaos_draws(seed, 1 + len(weights))[1:]
    return tuple(weight * (1 + chaos / MAX_CHAOS * draw) for weight, draw in zip(weights, draws, strict=True))


def _merged(terms: Sequence[tuple[str, float]]) -> Terms:
    """Equal texts added together, order kept, terms with a coefficient of 0 dropped."""
    totals: dict[str, float] = {}
    for text, coefficient in terms:
        totals[text] = totals.get(text, 0.0) + coefficient
    return tuple((text, coefficient) for text, coefficient in totals.items() if coefficient != 0)


def part_text(text: str) -> str:
    """A part as the text encoder reads it: without ``<lora:…>`` tags (the job's LoRAs come from the whole
    prompt) and with single spaces."""
    return " ".join(LORA_TAG.sub(" ", text).split())


def blend(parts: Sequence[tuple[str, float]], negative_prompt: str = "") -> ImageConditioning:
    """The conditioning of a multi-prompt's ``parts`` (text, weight) and its ``--no`` words (module docstring).

    Raises ValueError when the positive weights do not add up to more than 0 (the parser refuses such prompts)."""
    every = [(part_text(text), weight) for text, weight in parts]
    if negative_prompt:
        every.append((part_text(negative_prompt), NO_WEIGHT))
    positive = [(text, weight) for text, weight in every if weight > 0]
    negative = [(text, -weight) for text, weight in every if weight < 0]
    positive_total = sum(weight for _text, weight in positive)
    if positive_total <= 0:
        raise ValueError("a multi-prompt needs a part with a positive weight, e.g. `a cat:: a dog::2`")
    positive_terms = _merged([(text, weight / positive_total) for text, weight in positive])
    if not negative:
        return ImageConditioning(positive_terms, (("", 1.0),))
    negative_total = sum(weight for _text, weight in negative)
    strength = min(MAX_NEGATIVE_STRENGTH, negative_total / (-NO_WEIGHT * positive_total))
    negative_terms = [("", 1.0 - strength)] + [(text, strength * weight / negative_total) for text, weight in negative]
    return ImageConditioning(positive_terms, _merged(negative_terms))


def image_conditionings(tasks: Sequence[RenderTask]) -> list[ImageConditioning] | None:
    """One conditioning per image of ``tasks`` (task then seed order), each task's weights jittered by its
    ``chaos`` and the image's seed; None when no task is a multi-prompt (the plain prompt path renders them)."""
    if not any(task.weighted_prompts for task in tasks):
        return None
    conditionings: list[ImageConditioning] = []
    for task in tasks:
        for seed in task.seeds:
            if not task.weighted_prompts:
                conditionings.append(ImageConditioning(((task.prompt, 1.0),), ((task.negative_prompt, 1.0),)))
                continue
            texts = [text for text, _weight in task.weighted_prompts]
            weights = chaos_weights([weight for _text, weight in task.weighted_prompts], task.chaos, seed)
            conditionings.append(blend(list(zip(texts, weights, strict=True)), task.negative_prompt))
    return conditionings


def image_cfgs(tasks: Sequence[RenderTask]) -> list[float]:
    """Each image's CFG scale (task then seed order): the task's, jittered by its ``chaos``."""
    return [chaos_cfg(task.cfg, task.chaos, seed) for task in tasks for seed in task.seeds]
