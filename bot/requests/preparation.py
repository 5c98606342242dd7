"""Preparation: a member's request checked against every rule of this server and turned into jobs, before anything
is charged. Pure functions of the settings and the request (no database, no engine, no Discord).

Every entry point (``/imagine``, ``/edit``, ``/sweep``, the result buttons, ``python -m bot generate``) prepares its
jobs through :class:`bot.application.service.ImagineService`, which also moderates what they will render (channel rules
and the blocklist of the actor's server) and stamps them ``moderated_for`` that actor; only stamped jobs are admitted.
An attachment is announced first (:meth:`bot.requests.request_options.ImageInput.announced`: no file yet), so a bad
flag is refused before any download; :func:`attach_images` then adds the checked files and the checks that need their
size. A refusal is a :class:`~bot.errors.PromptError` (or :class:`~bot.errors.ImagineError`) that says what to change.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace

from bot.actors import Actor
from bot.errors import ImagineError, PromptError
from bot.jobs import ImageResult, Job, Kind, Lane, RenderParams
from bot.requests.control import control_applied, follow_up_control
from bot.requests.custom_ids import Action
from bot.requests.exact_size import sized_and_counted
from bot.requests.family_support import check_family_support
from bot.requests.follow_ups import check_follow_up
from bot.requests.image_prompts import split_image_urls, with_image_prompts
from bot.requests.model_limits import (
    check_negative_prompt,
    model_cfg,
    model_sampler,
    model_steps,
    model_sweep_limits,
)
from bot.requests.permutations import expand_permutations
from bot.requests.preferences import Preferences, apply_preferences
from bot.requests.prompt import ParsedPrompt, PromptLimits, clean_text, parse_prompt
from bot.requests.render_flags import check_prompt_flags, part_texts, prompt_flag_fields, quality_applied
from bot.requests.request_options import (
    ImageInput,
    RequestOptions,
    TaskOptions,
    apply_options,
    check_mask_shape,
    follow_up_params,
    follow_up_size,
    kind_for,
)
from bot.requests.sizing import size_for_aspect
from bot.requests.sweep_spec import SweepLimits, rendered_prompts
from config.model_registry import ModelSpec
from config.settings import Settings
from config.sources import DEFAULT_CONFIG_FILE, config_file
from engine.model_sources import fuse_lora_problem, lora_problem, model_is_present, source_problem
from engine.prompt_syntax import parse_loras
from engine.samplers import SAMPLERS

FOLLOW_UP_PIXEL_FACTOR = 4
"""A result button may render at most this many times ``max_pixels`` (a 2x upscale of the largest image)."""


@dataclass(frozen=True)
class Prepared:
    """A validated request, ready to queue."""

    kind: Kind
    prompt: str
    params: RenderParams
    lane: Lane | None = None
    """The lane a flag asked for (``--fast``, ``--relax``, ``--turbo``); None: the member's default."""
    parent_id: int | None = None
    """For a button's job: the job whose image it starts from."""
    parent_index: int | None = None
    moderated_for: Actor | None = None
    """The actor whose server's rules this job passed (set by the service's preparation); None: not moderated."""

    @property
    def rendered_prompts(self) -> list[str]:
        """Every prompt this job will render (a sweep's ``prompt`` axis replaces part of it; each ``::`` part too)."""
        return rendered_prompts(self.params.prompt, self.params.sweep) + part_texts(self.params)


def prompts_to_render(prepared: Iterable[Prepared]) -> list[str]:
    """Every distinct prompt a request will render, for moderation."""
    return list(dict.fromkeys(prompt for item in prepared for prompt in item.rendered_prompts))


def configured_models(settings: Settings, *, owner: bool = False) -> tuple[str, ...]:
    """The models a request may name: those the owner enabled for members, or for the owner every registry model."""
    return tuple(settings.registry) if owner else settings.member_models


def usable_models(settings: Settings, *, owner: bool = False) -> tuple[str, ...]:
    """The configured models that can be offered (autocomplete, /settings): a model whose local file or folder is
    missing or incomplete is left out until the owner fixes it (see :func:`local_model_problem`)."""
    return tuple(
        name
        for name in configured_models(settings, owner=owner)
        if local_model_problem(settings.registry[name]) is None
    )


def local_model_problem(spec: ModelSpec) -> str | None:
    """What is wrong with a model's local folder or single file, or the LoRA it fuses (for the owner: it names the
    path), or None. A hub or tiny model has none here: whether a hub model is downloaded is another question
    (:func:`model_is_present`)."""
    return source_problem(spec.source, spec.config) or fuse_lora_problem(spec.fuse_lora)


def config_name(*, public: bool) -> str:
    """Where the owner changes a setting: the configuration file; a member is never shown a path beyond the
    default ``config/bot.toml``."""
    current = config_file()
    if public and current != DEFAULT_CONFIG_FILE:
        return "the configuration file"
    return str(current)


def unusable_model_message(name: str, problem: str, *, owner: bool) -> str:
    """One line for a model whose local source has ``problem``: the problem itself for the owner, no path for a
    member. Never suggests ``models pull`` (a local source has nothing to download)."""
    setting = f"[models.{name}] {'fuse_lora' if problem.startswith('its fuse_lora') else 'source'}"
    if owner:
        return f"model `{name}` cannot be used: {problem}; fix {setting} in {config_name(public=False)}"
    return (
        f"model `{name}` is not available on this server (its files are missing or incomplete); "
        f"the owner can fix {setting} in {config_name(public=True)}"
    )


def unusable_lora_message(name: str, problem: str, *, owner: bool) -> str:
    """One line for a LoRA whose file has ``problem``: the path for the owner, none for a member."""
    setting = f"[loras.{name}] path"
    if owner:
        return f"LoRA {name} cannot be used: {problem}; fix {setting} in {config_name(public=False)}"
    return (
        f"LoRA {name} is not available on this server (its file is missing); "
        f"the owner can fix {setting} in {config_name(public=True)}"
    )


def prompt_limits(settings: Settings, *, owner: bool = False) -> PromptLimits:
    return PromptLimits(
        max_chars=settings.max_prompt_chars,
        max_steps=settings.max_steps,
        max_repeat=settings.max_repeat,
        models=configured_models(settings, owner=owner),
        samplers=tuple(SAMPLERS),
    )


def sweep_limits(settings: Settings, model: str) -> SweepLimits:
    """A sweep's values obey the same limits as the flags they stand for, on the job's model."""
    return model_sweep_limits(settings.registry[model], settings.max_steps)


def usable_model(name: str, settings: Settings, *, owner: bool = False) -> ModelSpec:
    """The registry entry of a model the request may use and that is on disk (the configured default is fetched at
    start-up; any other model only by the owner's ``models pull``); PromptError naming the choices otherwise.

    A local folder or file that is missing or incomplete is refused for every model, the default too: nothing
    can fetch it, so the message says what is wrong (to the owner) instead of suggesting a download."""
    spec = settings.registry.get(name)
    if spec is None or name not in configured_models(settings, owner=owner):
        choices = ", ".join(sorted(usable_models(settings, owner=owner)))
        raise PromptError(f"model `{name}` is not available on this server; use one of: {choices}", flag="model")
    problem = local_model_problem(spec)
    if problem is not None:
        raise PromptError(unusable_model_message(name, problem, owner=owner), flag="model")
    if name != settings.model and not model_is_present(spec):
        raise PromptError(
            f"model `{name}` is not downloaded on this server yet; the owner can fetch it with "
            f"`python -m bot models pull {name}`",
            flag="model",
        )
    return spec


def check_loras(prompt: str, settings: Settings, *, owner: bool = False) -> None:
    """Every ``<lora:NAME:weight>`` in the prompt names a configured LoRA with a numeric weight, whose file is
    there (a LoRA is always a local file: a missing one is refused here, before anything is charged)."""
    try:
        _clean, requested = parse_loras(prompt)
    except ValueError as error:
        raise PromptError(str(error)) from None
    for name, _weight in requested:
        if name not in settings.loras:
            known = ", ".join(sorted(settings.loras)) or "none are configured on this server"
            raise PromptError(f"unknown LoRA `{name}` in <lora:{name}:…>; known LoRAs: {known}")
        problem = lora_problem(settings.loras[name].path)
        if problem is not None:
            raise PromptError(unusable_lora_message(name, problem, owner=owner))


def build_params(parsed: ParsedPrompt, settings: Settings, seed: int, *, owner: bool = False) -> RenderParams:
    """Resolve a parsed prompt against the model's defaults and limits and the server's limits."""
    model_name = parsed.model or settings.model
    spec = usable_model(model_name, settings, owner=owner)
    steps = model_steps(parsed, spec, model_name, settings.max_steps)
    steps = quality_applied(parsed, steps, spec, model_name, settings.max_steps)
    cfg = model_cfg(parsed, spec, model_name)
    sampler = model_sampler(parsed, spec, model_name)
    check_loras(parsed.text, settings, owner=owner)
    width, height = size_for_aspect(parsed.aspect, spec.base_size, spec.size_multiple)
    if width * height > settings.max_pixels:
        raise PromptError(
            f"{width}x{height} is more pixels than this server allows ({settings.max_pixels}); use a less extreme --ar",
            flag="ar",
        )
    return RenderParams(
        prompt=parsed.text,
        negative_prompt=parsed.negative_prompt,
        model=model_name,
        width=width,
        height=height,
        steps=steps,
        cfg=cfg,
        seed=parsed.seed if parsed.seed is not None else seed,
        images=settings.images_per_job,
        sampler=sampler,
        tile=parsed.tile,
        **prompt_flag_fields(parsed),
    )


def prepare_imagine(
    settings: Settings,
    raw_prompt: str,
    preferences: Preferences | None = None,
    options: RequestOptions | None = None,
    *,
    owner: bool = False,
) -> list[Prepared]:
    """Parse and validate a request (permutations and --repeat give several jobs). Raises PromptError.

    ``owner``: the request comes from the owner's shell, which may use every registry model that is on disk.
    """
    cap = settings.max_prompts_per_message
    image_urls, text = split_image_urls(clean_text(raw_prompt))  # checked links only: nothing else is fetched
    if len(text) > settings.max_prompt_chars:  # before any permutation is expanded
        raise PromptError(
            f"the prompt is {len(text)} characters long; the limit is {settings.max_prompt_chars}. "
            "Shorten it and try again."
        )
    prepared: list[Prepared] = []
    for variant in expand_permutations(text, cap):
        parsed = parse_prompt(variant, prompt_limits(settings, owner=owner))
        if preferences is not None:
            parsed = apply_preferences(parsed, preferences, prompt_limits(settings, owner=owner))
            stale = parsed.model if "model" not in parsed.flags else None
            if stale is not None and stale not in usable_models(settings, owner=owner):
                raise PromptError(
                    f"your default model `{stale}` (from /settings) is not available on this server any more; "
                    "choose another in /settings or add --model",
                    flag="model",
                )
        first = build_params(parsed, settings, random_seed(), owner=owner)
        kind = Kind.IMAGINE
        if options is not None:
            kind, first = kind_for(options), apply_options(first, options, sweep_limits(settings, first.model))
            first = sized_and_counted(first, options, settings)
        check_family_support(
            first,
            settings,
            control=options is not None and options.control is not None,
            image_prompts=bool(image_urls or (options is not None and options.image_prompts)),
        )
        kind, first = control_applied(kind, first, options, parsed, settings, owner=owner)
        attachments = options.image_prompts if options is not None else ()
        first = with_image_prompts(
            first, settings, urls=image_urls, attachments=attachments, weight=parsed.image_weight, owner=owner
        )
        check_negative_prompt(first, settings.registry[first.model], first.model)
        check_prompt_flags(parsed, first, settings.registry[first.model], first.model)
        for rendered in rendered_prompts(first.prompt, first.sweep):
            check_rendered_prompt(replace(first, prompt=rendered), settings, owner=owner)
        lane = Lane(parsed.lane) if parsed.lane else None
        for repeat in range(parsed.repeat):
            if len(prepared) == cap:
                raise PromptError(
                    f"this asks for more than {cap} jobs at once (permutations × --repeat); ask for fewer",
                    flag="repeat" if parsed.repeat > 1 else None,
                )
            params = first if repeat == 0 else reseeded(first, parsed.seed, repeat)
            prepared.append(Prepared(kind, variant, params, lane))
    return prepared


def attach_images(
    prepared: Iterable[Prepared], image: ImageInput | None, mask: ImageInput | None, control: ImageInput | None = None
) -> list[Prepared]:
    """The jobs of a request prepared with announced attachments, now with the checked files: their paths, and the
    checks that need their size (a mask the shape of its image). Raises PromptError."""
    check_mask_shape(image, mask)
    attached: list[Prepared] = []
    for item in prepared:
        params = item.params
        if image is not None:
            params = replace(params, init_image=str(image.path))
        if mask is not None:
            params = replace(params, mask_image=str(mask.path))
        if control is not None:
            params = replace(params, control_image=str(control.path))
        attached.append(replace(item, params=params))
    return attached


def shell_prompt(raw_prompt: str, options: TaskOptions) -> str:
    """The prompt of a ``generate`` request, with its ``--model`` and ``--cw`` options as the flags they stand for."""
    prompt = f"{raw_prompt} --model {options.model}" if options.model else raw_prompt
    prompt = f"{prompt} --cw {options.control_weight:g}" if options.control_weight is not None else prompt
    return f"{prompt} --iw {options.image_weight:g}" if options.image_weight is not None else prompt


def check_shell_request(settings: Settings, raw_prompt: str, options: TaskOptions, *, owner: bool = True) -> None:
    """Everything about a ``generate`` request that needs no file (so a bad flag is refused before any file is read
    or any database opened). Raises PromptError."""
    if options.mask is not None and options.image is None:
        raise PromptError("--mask needs --image: the mask says which part of that image to repaint", flag="mask")
    announced = RequestOptions(
        image=ImageInput.announced() if options.image else None,
        mask=ImageInput.announced() if options.mask else None,
        strength=options.strength,
        sweeps=options.sweeps,
        control=ImageInput.announced() if options.control else None,
        control_mode=options.control_mode,
        image_prompts=tuple(ImageInput.announced() for _path in options.image_prompts),
    )
    prepare_imagine(settings, shell_prompt(raw_prompt, options), None, announced, owner=owner)


def check_rendered_prompt(params: RenderParams, settings: Settings, *, owner: bool = False) -> None:
    """A prompt a sweep makes (``params.prompt``) obeys the rules of a typed one (length, LoRAs, the model's family)."""
    if len(params.prompt) > settings.max_prompt_chars:
        raise PromptError(
            f"a sweep prompt is {len(params.prompt)} characters long; the limit is {settings.max_prompt_chars}",
            flag="sweep",
        )
    check_loras(params.prompt, settings, owner=owner)
    check_family_support(params, settings)


def prepare_follow_up(
    settings: Settings, parent: Job, images: list[ImageResult], action: Action, index: int, *, owner: bool = False
) -> Prepared:
    """The job a result button asks for (upscale, vary, reroll, zoom, pan), priced by the size it will render.

    Raises ImagineError when the parent cannot give it, the result would be too large, or its model's family refuses it.
    """
    follow_up = check_follow_up(parent, action, index, len(images))
    spec = usable_model(parent.params.model, settings, owner=owner)
    check_loras(parent.params.prompt, settings, owner=owner)
    if follow_up.kind is Kind.REROLL:
        params = follow_up_params(parent.params, Kind.REROLL, "", random_seed())
    else:
        image = images[index]
        size = follow_up_size(
            follow_up.kind, (image.width, image.height), spec.size_multiple, zoom=follow_up.zoom, pan=follow_up.pan
        )
        limit = settings.max_pixels * FOLLOW_UP_PIXEL_FACTOR
        if size[0] * size[1] > limit:
            raise ImagineError(
                f"this would make a {size[0]}x{size[1]} image, more than this server allows ({limit:,} pixels); "
                "upscale, zoom or pan a smaller image"
            )
        seed = image.seed if follow_up.kind is Kind.UPSCALE else random_seed()
        params = follow_up_params(
            parent.params,
            follow_up.kind,
            image.path,
            seed,
            variation=follow_up.variation,
            zoom=follow_up.zoom,
            pan=follow_up.pan,
            size=size,
        )
        if follow_up.kind in (Kind.VARIATION, Kind.ZOOM, Kind.PAN):
            params = replace(params, images=settings.images_per_job)
    kind, params = follow_up_control(follow_up.kind, params, parent.params, settings, owner=owner)
    check_family_support(params, settings, control=bool(params.control_image), image_prompts=bool(params.image_prompts))
    return Prepared(kind, parent.prompt, params, parent_id=parent.id, parent_index=index)


def reseeded(params: RenderParams, explicit_seed: int | None, repeat: int) -> RenderParams:
    """The ``repeat``-th copy of a job: a fresh seed, or with --seed the next grid's worth of seeds."""
    if explicit_seed is None:
        return replace(params, seed=random_seed())
    return replace(params, seed=(explicit_seed + repeat * params.images) % 2**32)


def random_seed() -> int:
    return secrets.randbelow(2**32)
