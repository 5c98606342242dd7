"""What each model family can do, and what a request asks of it that it cannot: pure rules, no torch (the bot
checks a request with them before anything is charged, the engine checks a task with them before it renders).

Stable Diffusion 1.x/2.x and SDXL (``sd15``, ``sd2``, ``sdxl``) are UNets over a 4-channel VAE: classifier-free
guidance, compel's prompt weights and blends, LoRAs, ControlNets, IP-Adapters, ``--tile`` and every sampler here.
Stable Diffusion 3/3.5 (``sd3``) and FLUX.1 (``flux``) are transformers over a 16-channel VAE, trained with flow
matching, so only flow-matching samplers fit them (:mod:`engine.flow_samplers`). SD3 guides with classifier-free
guidance as SD does (``--cfg``, ``--no``, ``--chaos`` work); FLUX.1 is guidance-distilled: ``--cfg`` is the guidance
value the transformer takes as an input (FLUX.1-dev; FLUX.1-schnell takes none), there is no unconditional pass, so
a negative prompt has nothing to act on. Both read the prompt through T5 (up to :func:`t5_token_limit` tokens; a
longer prompt is refused, never cut short), take LoRAs on their transformer and multi-prompts (``::``) as a blend of
each part's embeddings (negative parts through SD3's negative prompt; FLUX.1 has none, so they are refused). A1111
weights do not apply to T5 and are refused, pointing to ``::``; ControlNets and IP-Adapters are not built for them
yet: a request for them is refused, naming the families that have them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.prompt_syntax import LORA_TAG, has_weighting
from engine.prompt_weights import part_text
from engine.protocol import RenderTask, TaskKind


@dataclass(frozen=True)
class FamilyTraits:
    """What a model family does with a request's options."""

    name: str
    cfg: bool
    """``--cfg`` is classifier-free guidance (a negative prompt and ``--chaos`` act through it); False: a
    guidance-distilled model, whose ``--cfg`` is an input of the denoiser."""
    flow: bool = False
    """A flow-matching transformer over a 16-channel VAE (SD3, FLUX.1): its own samplers, sizes and previews."""
    prompt_weights: bool = True
    """A1111 weights (``(word:1.2)``, ``[word]``), through compel."""
    multi_prompts: bool = True
    """Multi-prompts (``::``): blended prompt embeddings (negative parts need ``cfg``)."""
    loras: bool = True
    """``<lora:NAME:weight>`` tags and a registry ``fuse_lora``."""
    controlnet: bool = True
    ip_adapter: bool = True
    tile: bool = True
    """``--tile``: circular padding in the UNet's and the VAE's convolutions."""
    samplers: tuple[str, ...] | None = None
    """The samplers that work with it (None: every one of :data:`engine.samplers.SAMPLERS`)."""
    default_sampler: str = ""
    """Its sampler when the registry entry names none ('' = :data:`engine.samplers.DEFAULT_SAMPLER`)."""
    size_multiple: int = 8
    """Width and height of its full-size models are multiples of this (VAE factor × patch size)."""
    latent_channels: int = 4


FLOW_SAMPLERS = ("euler",)
"""The samplers of flow-matching models: ``euler`` is diffusers' ``FlowMatchEulerDiscreteScheduler`` on them. Their
img2img and inpainting pipelines noise the source with ``scale_noise``, which only the flow-matching Euler
schedulers have, and a stochastic variant would draw its noise outside the job's seeded generators."""


def flow_traits(name: str, *, cfg: bool) -> FamilyTraits:
    """A flow-matching transformer family (SD3.5, FLUX.1): T5 prompts without A1111 weights, no UNet add-ons
    (ControlNet, IP-Adapter, circular tiling), the flow Euler sampler, 16-channel latents in 16-pixel steps."""
    return FamilyTraits(
        name,
        cfg=cfg,
        flow=True,
        prompt_weights=False,
        controlnet=False,
        ip_adapter=False,
        tile=False,
        samplers=FLOW_SAMPLERS,
        default_sampler="euler",
        size_multiple=16,
        latent_channels=16,
    )


FAMILIES: dict[str, FamilyTraits] = {
    "sd15": FamilyTraits("sd15", cfg=True),
    "sd2": FamilyTraits("sd2", cfg=True),
    "sdxl": FamilyTraits("sdxl", cfg=True),
    "sd3": flow_traits("sd3", cfg=True),  # real classifier-free guidance, a negative prompt
    "flux": flow_traits("flux", cfg=False),  # distilled guidance (dev) or none (schnell)
}
FLOW_FAMILIES = tuple(name for name, traits in FAMILIES.items() if traits.flow)
T5_TOKENS = {"sd3": 256, "flux": 512}
"""The T5 prompt length (``max_sequence_length``, in tokens with the closing ``</s>``) each flow family was trained
with: SD3.5's model cards give 256, FLUX.1-dev's pipeline 512."""
T5_TOKENS_SCHNELL = 256
"""FLUX.1-schnell's (no guidance input): the length it was trained with."""


def t5_token_limit(family: str, *, guidance: bool = True) -> int:
    """The most T5 tokens a prompt of ``family`` may have (0: the family reads no T5); ``guidance``: a FLUX.1 model
    takes a guidance input (FLUX.1-dev), which FLUX.1-schnell does not."""
    if family == "flux" and not guidance:
        return T5_TOKENS_SCHNELL
    return T5_TOKENS.get(family, 0)


def t5_too_long(model: str, limit: int, tokens: int, *, exact: bool = True) -> str:
    """What a member is told when a prompt has more T5 tokens than model ``model`` reads (``exact``: counted with
    the model's tokenizer; else a lower bound, its words)."""
    counted = f"{tokens} tokens" if exact else f"at least {tokens} tokens ({tokens - 1} words)"
    return (
        f"your prompt is too long for model `{model}`: it reads at most {limit} T5 tokens and yours is {counted}; "
        "shorten the prompt (nothing is cut off silently)"
    )


def t5_words_refusal(model: str, limit: int, texts: Sequence[str]) -> Refusal | None:
    """A prompt with more words than ``limit`` T5 tokens allow, refused before anything is charged: every word is
    at least one token, plus the closing ``</s>`` (the engine counts exactly with the model's tokenizer)."""
    if limit <= 0:
        return None
    for text in texts:
        tokens = len(text.split()) + 1
        if tokens > limit:
            return Refusal("prompt", t5_too_long(model, limit, tokens, exact=False))
    return None


def family_traits(family: str) -> FamilyTraits:
    """The traits of ``family``; an unknown family (a pipeline class name) is treated as SD1.5 is."""
    return FAMILIES.get(family, FAMILIES["sd15"])


def families_with(feature: str) -> str:
    """The families that have ``feature`` (a :class:`FamilyTraits` flag), as words: ``sd15, sd2 and sdxl``."""
    names = [name for name, traits in FAMILIES.items() if getattr(traits, feature)]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class Refusal:
    """Why a request cannot run on a model of some family: the flag or option to change, and a message saying what
    to change."""

    flag: str
    message: str


def negative_prompt_refusal(family: str, model: str) -> Refusal | None:
    """``--no`` on a guidance-distilled model (FLUX.1): it has no unconditional pass for a negative prompt to steer."""
    if family_traits(family).cfg:
        return None
    return Refusal(
        "no",
        f"`--no` has no effect on model `{model}`: {family} models render with distilled guidance, not classifier-free "
        "guidance, so they read no negative prompt; remove --no and say what you want in the prompt",
    )


def family_refusal(
    family: str,
    model: str,
    *,
    prompt: str = "",
    negative_prompt: str = "",
    multi_prompt: bool = False,
    negative_parts: bool = False,
    chaos: int = 0,
    tile: bool = False,
    control: bool = False,
    image_prompts: bool = False,
    lora_families: Mapping[str, str] | None = None,
    t5_limit: int = 0,
    parts: Sequence[str] = (),
) -> Refusal | None:
    """The first thing a request asks that a model of ``family`` cannot do, or None. ``prompt`` is the prompt as
    typed (LoRA tags and weights included); ``multi_prompt``: it has ``::`` parts, ``negative_parts``: some with a
    negative weight; ``lora_families``: the family each configured LoRA is for ('' = not said); ``t5_limit``: the
    model's T5 tokens (:func:`t5_token_limit`), checked against the words of the prompt or of each of its ``::``
    ``parts`` (each is encoded on its own)."""
    traits = family_traits(family)
    other = "or use --model with a model of family {}"
    if not traits.loras and LORA_TAG.search(prompt):
        return Refusal(
            "lora",
            f"LoRAs (`<lora:NAME:weight>`) do not work on model `{model}` ({family}) yet: remove the tag "
            + other.format(families_with("loras")),
        )
    for match in LORA_TAG.finditer(prompt):
        name = match.group(1).strip()
        lora_family = (lora_families or {}).get(name, "")
        if lora_family and lora_family != family:
            return Refusal(
                "lora",
                f"LoRA `{name}` is for {lora_family} models and model `{model}` is {family}: remove the tag, use a "
                f"LoRA made for {family}, or use --model with a {lora_family} model",
            )
    if not traits.multi_prompts and multi_prompt:
        return Refusal(
            "::",
            f"multi-prompts (`::`) do not work on model `{model}` ({family}) yet: write the prompt without `::` "
            + other.format(families_with("multi_prompts")),
        )
    if multi_prompt and negative_parts and not traits.cfg:
        return Refusal(
            "::",
            f"negative multi-prompt weights (`part::-0.5`) do not work on model `{model}` ({family}): it renders with "
            "distilled guidance and has no negative prompt for them to act on; remove the negative parts",
        )
    if not traits.prompt_weights and has_weighting(LORA_TAG.sub(" ", f"{prompt} {negative_prompt}")):
        hint = " or weigh whole parts with `::` (`a cat:: a dog::2`)" if traits.multi_prompts else ""
        return Refusal(
            "prompt",
            f"prompt weights such as `(word:1.2)` or `[word]` do not apply to model `{model}` ({family}): it reads the "
            "prompt through T5, which would read the brackets as words; remove them (write `\\(` for a literal "
            f"bracket){hint} " + other.format(families_with("prompt_weights")),
        )
    texts = [LORA_TAG.sub(" ", text) for text in (parts or [prompt])]
    refusal = t5_words_refusal(model, t5_limit, [*texts, negative_prompt])
    if refusal is not None:
        return refusal
    if negative_prompt:
        refusal = negative_prompt_refusal(family, model)
        if refusal is not None:
            return refusal
    if chaos and not traits.cfg:
        return Refusal(
            "chaos",
            f"`--chaos` varies the CFG scale, and model `{model}` ({family}) has none (its --cfg is a distilled "
            "guidance); remove --chaos",
        )
    if tile and not traits.tile:
        return Refusal(
            "tile",
            f"`--tile` does not work on model `{model}` ({family}): it wraps a UNet's convolutions, and {family} "
            "models are transformers; remove --tile " + other.format(families_with("tile")),
        )
    if control and not traits.controlnet:
        return Refusal(
            "controlnet",
            f"ControlNets do not work with model `{model}` ({family}) yet: drop the control image "
            + other.format(families_with("controlnet")),
        )
    if image_prompts and not traits.ip_adapter:
        return Refusal(
            "iw",
            f"image prompts do not work with model `{model}` ({family}) yet: drop the image links or attachments "
            + other.format(families_with("ip_adapter")),
        )
    return None


class PromptedRequest(Protocol):
    """What the family rules read of a request: the bot's ``RenderParams`` and the engine's ``RenderTask`` alike."""

    @property
    def prompt(self) -> str: ...
    @property
    def negative_prompt(self) -> str: ...
    @property
    def weighted_prompts(self) -> Sequence[tuple[str, float]]: ...
    @property
    def chaos(self) -> int: ...
    @property
    def tile(self) -> bool: ...


def request_refusal(
    family: str,
    model: str,
    request: PromptedRequest,
    *,
    control: bool = False,
    image_prompts: bool = False,
    lora_families: Mapping[str, str] | None = None,
    t5_limit: int = 0,
) -> Refusal | None:
    """:func:`family_refusal` of a whole request (its prompt, multi-prompt parts, ``--no``, ``--chaos``,
    ``--tile``); ``control``/``image_prompts``: it has a control image / image prompts."""
    weighted = request.weighted_prompts
    return family_refusal(
        family,
        model,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        multi_prompt=bool(weighted),
        negative_parts=any(weight < 0 for _text, weight in weighted),
        parts=[text for text, _weight in weighted],
        chaos=request.chaos,
        tile=request.tile,
        control=control,
        image_prompts=image_prompts,
        lora_families=lora_families,
        t5_limit=t5_limit,
    )


def t5_texts(request: PromptedRequest) -> list[str]:
    """The texts T5 reads for a request, each counted on its own against the model's limit: every multi-prompt
    part (or the prompt) without ``<lora:…>`` tags, then the negative prompt."""
    texts = [part_text(text) for text, _weight in request.weighted_prompts]
    if not texts:
        texts = [" ".join(LORA_TAG.sub("", request.prompt).split())]  # as the engine strips a prompt's LoRA tags
    if request.negative_prompt:
        texts.append(request.negative_prompt)
    return texts


def check_family_task(family: str, model: str, task: RenderTask) -> None:
    """Raise ValueError with :func:`family_refusal`'s message for a task a model of ``family`` cannot render (the bot
    refuses such requests before charging; this keeps a task from elsewhere from failing halfway)."""
    refusal = request_refusal(
        family, model, task, control=task.kind == TaskKind.CONTROL, image_prompts=bool(task.image_prompts)
    )
    if refusal is not None:
        raise ValueError(refusal.message)
